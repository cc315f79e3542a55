import Compiler
import Foundation
import Graph

/// The inference model of a run: the trained architecture with its current values,
/// BatchNormalization in inference form (running statistics), and LDAM's cosine head
/// lowered to standard ONNX ops, so that onnxruntime (and any ONNX tool) runs it.
public enum InferenceModel {
    /// F.normalize's ε: a zero feature vector gives zero logits, not NaN.
    public static let normEpsilon: Float = 1e-12

    /// `model` (the run's architecture) with every parameter's value from `values`;
    /// `kiln.NormedLinear` heads become ReduceL2 → Max(ε) → Div → MatMul with the weight's
    /// columns normalised, then × `scale`, so softmax of the logits is the probability the
    /// loss trained (without the margin).
    public static func build(model: Graph, values: [String: TensorData], scale: Float, metadata: [String: String] = [:]) throws -> Graph {
        var g = model
        for i in g.parameters.indices {
            if let v = values[g.parameters[i].name] {
                guard v.shape == g.parameters[i].shape, v.dtype == g.parameters[i].dtype else {
                    throw DatasetError(path: g.parameters[i].name, message: "value \(v.type) does not fit the parameter \(g.parameters[i].type)")
                }
                g.parameters[i].initializer = .data(v)
            } else if g.parameters[i].initializer.tensor == nil {
                throw DatasetError(path: g.parameters[i].name, message: "the run holds no value for this parameter")
            }
        }
        var names = NameTable(graph: g)
        func fresh(_ base: String) -> String { names.fresh(base) }
        var nodes: [Node] = []
        let types = g.valueTypes
        for n in g.nodes {
            guard n.domain == "kiln" && n.op == "NormedLinear" else { nodes.append(n); continue }
            guard let wi = g.parameters.firstIndex(where: { $0.name == n.inputs[1] }), let w = g.parameters[wi].initializer.tensor,
                  w.shape.count == 2, let xt = types[n.inputs[0]], xt.rank == 2 else {
                throw DatasetError(path: n.name, message: "a NormedLinear head needs features [N, F] and a weight parameter [F, C]")
            }
            let f = w.shape[0], c = w.shape[1]
            var u = w.floats
            for j in 0..<c {
                var s: Float = 0
                for k in 0..<f { s += u[k * c + j] * u[k * c + j] }
                let norm = max(s.squareRoot(), normEpsilon)
                for k in 0..<f { u[k * c + j] /= norm }
            }
            g.parameters[wi].initializer = .data(TensorData(floats: u, shape: [f, c]))
            let batch = xt.shape[0]
            let eps = fresh("\(n.name).epsilon"), s = fresh("\(n.name).scale")
            g.parameters.append(Parameter(name: eps, data: TensorData(floats: [normEpsilon], shape: [])))
            g.parameters.append(Parameter(name: s, data: TensorData(floats: [scale], shape: [])))
            let norm = fresh("\(n.name).feature_norm"), clamped = fresh("\(n.name).feature_norm_clamped")
            let unit = fresh("\(n.name).unit_features"), cosine = fresh("\(n.name).cosine")
            let col = TensorType(.f32, [batch, Dim(1)]), out = n.outputs[0]
            nodes.append(Node(name: fresh("\(n.name).l2"), op: "ReduceL2", inputs: [n.inputs[0]], outputs: [Value(norm, col)],
                              attributes: ["axes": .ints([1]), "keepdims": .int(1)]))
            nodes.append(Node(name: fresh("\(n.name).clamp"), op: "Max", inputs: [norm, eps], outputs: [Value(clamped, col)]))
            nodes.append(Node(name: fresh("\(n.name).normalize"), op: "Div", inputs: [n.inputs[0], clamped], outputs: [Value(unit, xt)]))
            nodes.append(Node(name: fresh("\(n.name).matmul"), op: "MatMul", inputs: [unit, n.inputs[1]], outputs: [Value(cosine, out.type)]))
            nodes.append(Node(name: n.name, op: "Mul", inputs: [cosine, s], outputs: [out]))
        }
        g.nodes = nodes
        g.metadata.merge(metadata) { _, new in new }
        return try eliminateDeadCode(g).verified()
    }
}
