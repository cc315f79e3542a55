/// A gradient rule could not be applied (a form of the op it does not handle).
public struct GradientError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a gradient rule (OpDefinition.gradient) builds with: the training graph under
/// construction, its value types, fresh names, and the gradient contributions per value,
/// summed when a value's gradient is needed. Compiler's Autodiff drives it.
public struct GradientContext {
    public internal(set) var graph: Graph
    public internal(set) var types: [String: TensorType]
    var names: NameTable
    /// Gradient contributions per value.
    var contributions: [String: [String]] = [:]

    public init(graph: Graph) {
        self.graph = graph
        types = graph.valueTypes
        names = NameTable(graph: graph)
    }

    /// The type of value `v` (every value a rule sees has one).
    public func type(_ v: String) -> TensorType { types[v]! }

    /// A name not yet used in the graph, from `base`.
    public mutating func fresh(_ base: String) -> String {
        names.fresh(base)
    }

    /// Marks names as used (outputs a driver names itself).
    public mutating func reserve(_ reserved: [String]) { names.reserve(reserved) }

    /// Sets a value's type (values a driver adds outside `emit`).
    public mutating func setType(_ v: String, _ t: TensorType) { types[v] = t }

    /// Replaces the graph (the driver's own rewrites: forward in training mode, the updates).
    public mutating func update(_ body: (inout Graph) -> Void) { body(&graph) }

    /// A new constant parameter holding `data`.
    public mutating func constant(_ base: String, _ data: TensorData) -> String {
        let name = fresh(base)
        graph.parameters.append(Parameter(name: name, role: .const, data: data))
        types[name] = TensorType(data.dtype, data.shape.map { Dim($0) })
        return name
    }

    /// Appends a node (domain "kiln" unless given); its outputs get the given names and types.
    @discardableResult
    public mutating func emit(_ op: String, domain: String = "kiln", _ inputs: [String], _ outputs: [(String, TensorType)],
                              attributes: [String: Attribute] = [:], name base: String) -> [String] {
        let node = Node(name: fresh(base), op: op, domain: domain, inputs: inputs,
                        outputs: outputs.map { Value($0.0, $0.1) }, attributes: attributes)
        graph.nodes.append(node)
        for (n, t) in outputs { types[n] = t; names.reserve([n]) }
        return outputs.map(\.0)
    }

    /// A fresh name for a gradient contribution to `v`.
    public mutating func part(_ v: String) -> String { fresh("\(v).grad.part") }

    /// Adds a contribution to `v`'s gradient.
    public mutating func add(_ v: String, _ grad: String) { contributions[v, default: []].append(grad) }

    /// The gradient of `v`: its one contribution, or their Sum; nil when nothing flows to it.
    public mutating func gradient(of v: String) -> String? {
        guard let parts = contributions[v], !parts.isEmpty else { return nil }
        if parts.count == 1 { return parts[0] }
        let total = fresh("\(v).grad")
        emit("Sum", domain: "", parts, [(total, types[v]!)], name: "\(v).grad.sum")
        contributions[v] = [total]
        return total
    }

    /// A gradient reduced to `like`'s shape where `like` was broadcast.
    public mutating func reduced(_ grad: String, to like: String) -> String {
        if types[grad]?.shape == types[like]?.shape { return grad }
        return emit("ReduceToShape", [grad, like], [(fresh("\(like).grad.part"), types[like]!)], name: "\(like).grad.reduce")[0]
    }

    /// The error for a form of node `n` its rule does not handle.
    public func unsupported(_ n: Node, _ what: String) -> GradientError {
        GradientError("no backward rule for \(what) (node '\(n.name)')")
    }
}
