import Graph

/// Errors while running a graph, with the node or input they concern.
public enum RuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    case missingInput(String)
    case unexpectedInput(String)
    case inputMismatch(name: String, expected: String, got: String)
    case noValues(parameter: String)
    case kernel(node: String, op: String, message: String)
    case unsupported(node: String, op: String)

    public var description: String {
        switch self {
        case .missingInput(let n): return "no value given for graph input '\(n)'"
        case .unexpectedInput(let n): return "the graph has no input named '\(n)'"
        case let .inputMismatch(n, e, g): return "input '\(n)' must be \(e), got \(g)"
        case .noValues(let p): return "parameter '\(p)' has no values (initialise the graph's weights first)"
        case let .kernel(n, o, m): return "node '\(n)' (\(o)): \(m)"
        case let .unsupported(n, o): return "node '\(n)': no reference kernel for \(o)"
        }
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
            guard let kernel = OpRegistry.definition(of: node)?.reference else {
                throw RuntimeError.unsupported(node: node.name, op: node.qualifiedOp)
            }
            let ctx = RefContext(node: node, inputs: node.inputs.map { $0.isEmpty ? nil : env[$0] },
                                 outputTypes: node.outputs.map(\.type))
            let results: [HostTensor]
            do {
                results = try kernel(ctx)
            } catch let e as RuntimeError {
                throw e
            } catch let e as KernelError {
                throw RuntimeError.kernel(node: e.node, op: e.op, message: e.message)
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
