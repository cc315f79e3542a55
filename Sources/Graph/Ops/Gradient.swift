/// A gradient rule could not be applied (a form of the op it does not handle).
public struct GradientError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a gradient rule (OpDefinition.gradient) builds with: the training graph under
/// construction (a GraphBuilder continuing the forward graph, so every node a rule emits has
/// its output types inferred and checked by its schema), fresh names, and the gradient
/// contributions per value, summed when a value's gradient is needed. Compiler's Autodiff
/// drives it.
public struct GradientContext {
    /// The graph under construction; the driver adds its own inputs, buffers and outputs to it.
    public let builder: GraphBuilder
    /// Gradient contributions per value.
    var contributions: [String: [String]] = [:]

    public init(graph: Graph) { builder = GraphBuilder(continuing: graph) }

    public var graph: Graph { builder.graph }

    /// The type of value `v` (every value a rule sees has one).
    public func type(_ v: String) -> TensorType { builder.type(of: v)! }

    /// A name not yet used in the graph, from `base`.
    public func fresh(_ base: String) -> String { builder.fresh(base) }

    /// A new constant parameter holding `data`.
    public func constant(_ base: String, _ data: TensorData) -> String {
        builder.parameter(fresh(base), data.shape, .data(data), role: .const, dtype: data.dtype)
    }

    /// Appends a node (domain "kiln" unless given) named from `base`, with outputs named
    /// `outputs`; their types come from the op's schema.
    @discardableResult
    public func emit(_ op: String, domain: String = "kiln", _ inputs: [String], _ outputs: [String],
                     attributes: [String: Attribute] = [:], name base: String) throws -> [String] {
        try builder.node(op, domain: domain, name: fresh(base), inputs, attributes, outputs: outputs)
    }

    /// A fresh name for a gradient contribution to `v`.
    public func part(_ v: String) -> String { fresh("\(v).grad.part") }

    /// Adds a contribution to `v`'s gradient; it must have `v`'s type.
    public mutating func add(_ v: String, _ grad: String) throws {
        guard type(grad) == type(v) else {
            throw GradientError("the gradient '\(grad)' of '\(v)' is \(type(grad)), expected \(type(v))")
        }
        contributions[v, default: []].append(grad)
    }

    /// The gradient of `v`: its one contribution, or their Sum; nil when nothing flows to it.
    public mutating func gradient(of v: String) throws -> String? {
        guard let parts = contributions[v], !parts.isEmpty else { return nil }
        if parts.count == 1 { return parts[0] }
        let total = try emit("Sum", domain: "", parts, [fresh("\(v).grad")], name: "\(v).grad.sum")[0]
        contributions[v] = [total]
        return total
    }

    /// A gradient reduced to `like`'s shape where `like` was broadcast.
    public func reduced(_ grad: String, to like: String) throws -> String {
        if type(grad).shape == type(like).shape { return grad }
        return try emit("ReduceToShape", [grad, like], [fresh("\(like).grad.part")], name: "\(like).grad.reduce")[0]
    }

    /// The error for a form of node `n` its rule does not handle.
    public func unsupported(_ n: Node, _ what: String) -> GradientError {
        GradientError("no backward rule for \(what) (node '\(n.name)')")
    }
}
