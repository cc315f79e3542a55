/// Errors about graphs and their files, each with the context a person needs to fix it.
public enum GraphError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A text IR file that does not parse: `file:line:column: message`.
    case syntax(file: String, line: Int, column: Int, message: String)
    /// A node that fails verification; `location` is `file:line` when the graph came from text.
    case node(name: String, op: String, message: String, location: String?)
    /// A graph-level problem not tied to one node (duplicate input, missing output, …).
    case graph(message: String, location: String?)
    /// A file that cannot be read as what it claims to be (ONNX, tensor, …).
    case file(path: String, message: String)

    public var description: String {
        switch self {
        case let .syntax(file, line, column, message):
            return "\(file):\(line):\(column): \(message)"
        case let .node(name, op, message, location):
            let prefix = location.map { "\($0): " } ?? ""
            return "\(prefix)node '\(name)' (\(op)): \(message)"
        case let .graph(message, location):
            let prefix = location.map { "\($0): " } ?? ""
            return "\(prefix)\(message)"
        case let .file(path, message):
            return "\(path): \(message)"
        }
    }

    /// The same error with a source location attached (for errors found after parsing).
    public func located(_ location: String?) -> GraphError {
        guard let location else { return self }
        switch self {
        case .syntax: return self
        case let .node(n, o, m, nil): return .node(name: n, op: o, message: m, location: location)
        case let .graph(m, nil): return .graph(message: m, location: location)
        default: return self
        }
    }
}
