import Graph

/// A compiler pass: a named function from graph to graph. The pipeline verifies the graph
/// after every pass, so a pass that breaks an invariant is caught where it happens.
public struct Pass: Sendable {
    public let name: String
    public let summary: String
    public let transform: @Sendable (Graph) throws -> Graph

    public init(_ name: String, summary: String, transform: @escaping @Sendable (Graph) throws -> Graph) {
        self.name = name
        self.summary = summary
        self.transform = transform
    }
}

public enum CompilerError: Error, Sendable, CustomStringConvertible {
    /// A pass produced a graph that no longer verifies: a bug in the pass, reported with it.
    case passBrokeGraph(pass: String, error: GraphError)
    /// The graph cannot become a program (a value type or shape the compiled path lacks).
    case lowering(String)
    /// The graph cannot be turned into a training step (no logits, an op without a
    /// backward rule, …).
    case training(String)

    public var description: String {
        switch self {
        case let .passBrokeGraph(pass, error): return "pass '\(pass)' produced an invalid graph: \(error)"
        case let .lowering(m): return "cannot compile: \(m)"
        case let .training(m): return "cannot train: \(m)"
        }
    }
}

public enum Pipeline {
    /// Runs `passes` in order, verifying after each; `observe` sees each intermediate graph
    /// (for `kiln dump --after`).
    public static func run(_ graph: Graph, passes: [Pass], observe: (Pass, Graph) throws -> Void = { _, _ in }) throws -> Graph {
        var g = graph
        for pass in passes {
            let next = try pass.transform(g)
            do {
                g = try next.verified()
            } catch {
                throw CompilerError.passBrokeGraph(pass: pass.name, error: error)
            }
            try observe(pass, g)
        }
        return g
    }
}
