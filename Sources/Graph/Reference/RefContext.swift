/// A reference kernel's failure, naming its node and op.
public struct KernelError: Error, Sendable, Equatable, CustomStringConvertible {
    public let node: String, op: String, message: String
    public var description: String { "node '\(node)' (\(op)): \(message)" }
}

/// What a reference kernel sees: its node, input tensors, and static output types.
public struct RefContext: Sendable {
    public let node: Node
    public let inputs: [HostTensor?]
    public let outputTypes: [TensorType]

    public init(node: Node, inputs: [HostTensor?], outputTypes: [TensorType]) {
        self.node = node
        self.inputs = inputs
        self.outputTypes = outputTypes
    }

    public func fail(_ m: String) -> KernelError { KernelError(node: node.name, op: node.qualifiedOp, message: m) }

    func input(_ k: Int) throws -> HostTensor {
        guard k < inputs.count, let t = inputs[k] else { throw fail("input \(k) is missing") }
        return t
    }

    func optional(_ k: Int) -> HostTensor? { k < inputs.count ? inputs[k] : nil }

    func outShape(_ k: Int = 0) -> [Int] { outputTypes[k].shape.map { $0.value ?? 0 } }
    func outType(_ k: Int = 0) -> DType { outputTypes[k].dtype }

    private func attr(_ name: String) -> Attribute? {
        node.attributes[name] ?? OpRegistry.definition(of: node)?.schema.attribute(name)?.defaultValue
    }

    func int(_ name: String) -> Int { if case .int(let v)? = attr(name) { return v }; return 0 }
    func float(_ name: String) -> Double { if case .float(let v)? = attr(name) { return Double(v) }; return 0 }
    func string(_ name: String) -> String { if case .string(let v)? = attr(name) { return v }; return "" }
    func ints(_ name: String) -> [Int]? { if case .ints(let v)? = attr(name) { return v }; return nil }
    func has(_ name: String) -> Bool { node.attributes[name] != nil }
    func attribute(_ name: String) -> Attribute? { node.attributes[name] }

    func axis(_ a: Int, rank: Int) -> Int { a < 0 ? a + rank : a }
}

public typealias RefKernel = @Sendable (RefContext) throws -> [HostTensor]
