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
        // The heads' weights, columns normalised.
        let types = g.valueTypes
        for n in g.nodes where n.domain == "kiln" && n.op == "NormedLinear" {
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
        }
        // The graph again, each head as ONNX ops.
        var base = g
        base.nodes = []
        let b = GraphBuilder(continuing: base)
        for n in g.nodes {
            guard n.domain == "kiln" && n.op == "NormedLinear" else { try b.add(n); continue }
            let eps = b.fresh("\(n.name).epsilon"), s = b.fresh("\(n.name).scale")
            b.parameter(eps, [], .data(TensorData(floats: [normEpsilon], shape: [])), role: .const)
            b.parameter(s, [], .data(TensorData(floats: [scale], shape: [])), role: .const)
            let norm = b.fresh("\(n.name).feature_norm"), clamped = b.fresh("\(n.name).feature_norm_clamped")
            let unit = b.fresh("\(n.name).unit_features"), cosine = b.fresh("\(n.name).cosine")
            try b.node("ReduceL2", name: b.fresh("\(n.name).l2"), [n.inputs[0]], ["axes": .ints([1]), "keepdims": .int(1)], outputs: [norm])
            try b.node("Max", name: b.fresh("\(n.name).clamp"), [norm, eps], outputs: [clamped])
            try b.node("Div", name: b.fresh("\(n.name).normalize"), [n.inputs[0], clamped], outputs: [unit])
            try b.node("MatMul", name: b.fresh("\(n.name).matmul"), [unit, n.inputs[1]], outputs: [cosine])
            try b.node("Mul", name: n.name, [cosine, s], outputs: [n.outputs[0].name])
        }
        g = b.graph
        g.metadata.merge(metadata) { _, new in new }
        return try eliminateDeadCode(g).verified()
    }
}
