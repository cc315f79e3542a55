import Graph

/// Errors while running a graph, with the node or input they concern.
public enum RuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    case missingInput(String)
    case unexpectedInput(String)
    case inputMismatch(name: String, expected: String, got: String)
    case noValues(parameter: String)
    case kernel(node: String, op: String, message: String)
    case unsupported(node: String, op: String)
    case fixedBatch(size: Int, requested: Int)

    public var description: String {
        switch self {
        case .missingInput(let n): return "no value given for graph input '\(n)'"
        case .unexpectedInput(let n): return "the graph has no input named '\(n)'"
        case let .inputMismatch(n, e, g): return "input '\(n)' must be \(e), got \(g)"
        case .noValues(let p): return "parameter '\(p)' has no values (initialise the graph's weights first)"
        case let .kernel(n, o, m): return "node '\(n)' (\(o)): \(m)"
        case let .unsupported(n, o): return "node '\(n)': no reference kernel for \(o)"
        case let .fixedBatch(n, b):
            return "the model's batch is fixed at \(n) and the graph depends on that size (a constant shape), so it cannot be compiled for \(b) images; "
                + "inference runs such a model in groups of \(n), anything else needs it re-exported with a dynamic batch (dynamic_axes in torch.onnx.export)"
        }
    }
}

extension Graph {
    /// The graph ready for `batch` images: as it is, unless its batch is fixed at another size,
    /// which is rebound (`rebindingBatch`) when nothing in the graph depends on it; a model
    /// whose batch a constant bakes in is `RuntimeError.fixedBatch` (inference runs such a
    /// model in groups instead, `CompiledModel.forThroughput`).
    public func bindingBatch(_ batch: Int) throws -> Graph {
        guard case .fixed(let n)? = batchDimension, n != batch else { return self }
        guard let rebound = rebindingBatch() else { throw RuntimeError.fixedBatch(size: n, requested: batch) }
        return rebound
    }

    /// The graph with its inputs' symbolic dimensions bound to the sizes of `shapes` and every
    /// value's type re-inferred, so all shapes are static.
    public func specialized(inputShapes shapes: [String: [Int]]) throws -> Graph {
        var bindings: [String: Int] = [:]
        for v in inputs {
            guard let s = shapes[v.name] else { throw RuntimeError.missingInput(v.name) }
            guard s.count == v.type.rank else {
                throw RuntimeError.inputMismatch(name: v.name, expected: v.type.description, got: "rank \(s.count) \(s)")
            }
            for (d, size) in zip(v.type.shape, s) {
                if let fixed = d.value {
                    guard fixed == size else { throw RuntimeError.inputMismatch(name: v.name, expected: v.type.description, got: "\(s)") }
                } else if d.symbols.count == 1 && d.coefficient == 1 {
                    let sym = d.symbols[0]
                    if let b = bindings[sym], b != size {
                        throw RuntimeError.inputMismatch(name: v.name, expected: "\(sym) = \(b) as bound by an earlier input", got: "\(s)")
                    }
                    bindings[sym] = size
                }
            }
        }
        var g = self
        for k in g.inputs.indices {
            g.inputs[k].type.shape = shapes[g.inputs[k].name]!.map { Dim($0) }
        }
        let undeclared = Set(nodes.flatMap { $0.outputs.map(\.name) })
        return try g.verified(undeclared: undeclared, undeclaredOutputs: Set(outputs.map(\.name)))
    }
}

/// Runs a graph with the naive reference kernels: the oracle every fast kernel is tested
/// against. Slow by design; every op computes in Double (floats) or Int64 (integers).
public enum ReferenceExecutor {
    public static func run(_ graph: Graph, inputs: [String: TensorData]) throws -> [String: TensorData] {
        let known = Set(graph.inputs.map(\.name))
        for name in inputs.keys where !known.contains(name) { throw RuntimeError.unexpectedInput(name) }
        for v in graph.inputs {
            guard let t = inputs[v.name] else { throw RuntimeError.missingInput(v.name) }
            guard t.dtype == v.type.dtype else {
                throw RuntimeError.inputMismatch(name: v.name, expected: v.type.description, got: t.type.description)
            }
        }
        let results = try evaluate(graph, inputs: inputs.mapValues { HostTensor($0) })
        var out: [String: TensorData] = [:]
        for (name, t) in results { out[name] = t.data }
        return out
    }

    /// Runs the graph in double precision and returns the outputs unrounded. `parameters`
    /// replaces parameter values (the finite-difference tests perturb weights by less than
    /// an f32 step).
    public static func evaluate(_ graph: Graph, inputs: [String: HostTensor], parameters: [String: HostTensor] = [:]) throws -> [String: HostTensor] {
        let g = try graph.specialized(inputShapes: inputs.mapValues(\.shape))
        var env: [String: HostTensor] = [:]
        for (name, t) in inputs { env[name] = t }
        for p in g.parameters {
            if let t = parameters[p.name] { env[p.name] = t; continue }
            guard let t = p.initializer.tensor else { throw RuntimeError.noValues(parameter: p.name) }
            env[p.name] = HostTensor(t)
        }
        for node in g.nodes {
            guard let kernel = referenceKernels[node.domain.isEmpty ? node.op : "\(node.domain).\(node.op)"] else {
                throw RuntimeError.unsupported(node: node.name, op: node.qualifiedOp)
            }
            let ctx = RefContext(node: node, inputs: node.inputs.map { $0.isEmpty ? nil : env[$0] },
                                 outputTypes: node.outputs.map(\.type))
            let results: [HostTensor]
            do {
                results = try kernel(ctx)
            } catch let e as RuntimeError {
                throw e
            } catch {
                throw RuntimeError.kernel(node: node.name, op: node.qualifiedOp, message: "\(error)")
            }
            for (k, out) in node.outputs.enumerated() where !out.name.isEmpty && k < results.count {
                env[out.name] = results[k]
            }
        }
        var out: [String: HostTensor] = [:]
        for v in g.outputs { out[v.name] = env[v.name]! }
        return out
    }
}

/// What a reference kernel sees: its node, input tensors, and static output types.
struct RefContext: Sendable {
    let node: Node
    let inputs: [HostTensor?]
    let outputTypes: [TensorType]

    func fail(_ m: String) -> RuntimeError { .kernel(node: node.name, op: node.qualifiedOp, message: m) }

    func input(_ k: Int) throws -> HostTensor {
        guard k < inputs.count, let t = inputs[k] else { throw fail("input \(k) is missing") }
        return t
    }

    func optional(_ k: Int) -> HostTensor? { k < inputs.count ? inputs[k] : nil }

    func outShape(_ k: Int = 0) -> [Int] { outputTypes[k].shape.map { $0.value ?? 0 } }
    func outType(_ k: Int = 0) -> DType { outputTypes[k].dtype }

    private func attr(_ name: String) -> Attribute? {
        node.attributes[name] ?? OpCatalogue.schema(domain: node.domain, op: node.op)?.attribute(name)?.defaultValue
    }

    func int(_ name: String) -> Int { if case .int(let v)? = attr(name) { return v }; return 0 }
    func float(_ name: String) -> Double { if case .float(let v)? = attr(name) { return Double(v) }; return 0 }
    func string(_ name: String) -> String { if case .string(let v)? = attr(name) { return v }; return "" }
    func ints(_ name: String) -> [Int]? { if case .ints(let v)? = attr(name) { return v }; return nil }
    func has(_ name: String) -> Bool { node.attributes[name] != nil }
    func attribute(_ name: String) -> Attribute? { node.attributes[name] }

    func axis(_ a: Int, rank: Int) -> Int { a < 0 ? a + rank : a }
}

typealias RefKernel = @Sendable (RefContext) throws -> [HostTensor]
