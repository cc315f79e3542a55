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

/// Classifier-level adjustments folded into an exported model, so the deployed model is the
/// adjusted one: τ-normalisation of the classifier's weights (Kang et al. 2020) and post-hoc
/// logit adjustment (Menon et al. 2021).
public struct ClassifierAdjustment: Sendable, Equatable, Codable {
    /// τ-normalisation's exponent T: class j's weight vector w_j becomes w_j / ‖w_j‖^T (the
    /// bias is kept). A cosine head's weights are unit vectors already, so T changes nothing there.
    public var tauNorm: Double?
    /// Post-hoc logit adjustment's τ: the logits become z − τ·log(prior), the prior from the
    /// training images per class; folded into a Gemm head's bias, or one Sub after the head.
    public var logitAdjust: Double?

    public init(tauNorm: Double? = nil, logitAdjust: Double? = nil) {
        self.tauNorm = tauNorm
        self.logitAdjust = logitAdjust
    }

    public var isEmpty: Bool { tauNorm == nil && logitAdjust == nil }

    /// The metadata key recording the adjustments an exported model holds.
    public static let metadataKey = "kiln.classifier_adjustment"

    /// `graph` (an inference model whose first output is the logits [N, C]) with the
    /// adjustments applied, and a line per adjustment saying how it was applied.
    public func apply(to graph: Graph, classCounts: [Int]) throws -> (Graph, [String]) {
        var g = graph
        var notes: [String] = []
        guard let logits = g.outputs.first, logits.type.rank == 2, let classes = logits.type.shape[1].value else {
            throw DatasetError(path: g.name, message: "the model's first output must be logits [N, C] to adjust its classifier")
        }
        guard let headIndex = g.nodes.lastIndex(where: { $0.outputs.contains { $0.name == logits.name } }) else {
            throw DatasetError(path: g.name, message: "the logits '\(logits.name)' come from no node")
        }
        if let t = tauNorm {
            guard t.isFinite, t >= 0 else { throw DatasetError(path: g.name, message: "the τ-normalisation exponent must be a finite number ≥ 0, got \(t)") }
            notes.append(try tauNormalise(&g, headIndex: headIndex, classes: classes, exponent: t))
        }
        if let tau = logitAdjust {
            guard tau.isFinite else { throw DatasetError(path: g.name, message: "the logit adjustment τ must be finite, got \(tau)") }
            guard classCounts.count == classes, classCounts.allSatisfy({ $0 > 0 }) else {
                throw DatasetError(path: g.name, message: "logit adjustment needs a positive training count for each of the \(classes) classes, the run holds \(classCounts)")
            }
            let shift = LongTail.logPrior(counts: classCounts).map { Float(-tau * $0) }
            notes.append(try addToLogits(&g, headIndex: headIndex, shift: shift, logits: logits))
        }
        g.metadata[Self.metadataKey] = Exporter.json(self)
        return (try g.verified(), notes)
    }

    /// Scales each class's weight vector of the head (a Gemm, or the MatMul of a lowered
    /// cosine head) by ‖w_j‖^(−T).
    private func tauNormalise(_ g: inout Graph, headIndex: Int, classes: Int, exponent: Double) throws -> String {
        // The weight: the head's own (Gemm), or the MatMul feeding a final Mul (cosine head).
        var node = g.nodes[headIndex]
        if node.op == "Mul", let producer = g.nodes.last(where: { $0.outputs.first?.name == node.inputs[0] }), producer.op == "MatMul" {
            node = producer
        }
        guard node.domain.isEmpty, node.op == "Gemm" || node.op == "MatMul", let wi = g.parameters.firstIndex(where: { $0.name == node.inputs[1] }),
              let w = g.parameters[wi].initializer.tensor, w.shape.count == 2 else {
            throw DatasetError(path: node.name, message: "τ-normalisation needs a Gemm or MatMul classifier with a constant weight; the logits come from \(node.qualifiedOp)")
        }
        var transB = 0
        if node.op == "Gemm", case .int(let t)? = node.attributes["transB"] { transB = t }
        // Element (class j, feature k) of W: [C, F] when transposed, else [F, C].
        let (rows, cols) = (w.shape[0], w.shape[1])
        guard (transB != 0 ? rows : cols) == classes else {
            throw DatasetError(path: node.name, message: "the classifier weight \(w.shape) does not have one vector per class (\(classes))")
        }
        var v = w.floats
        let features = transB != 0 ? cols : rows
        func at(_ j: Int, _ k: Int) -> Int { transB != 0 ? j * cols + k : k * cols + j }
        var norms: [Double] = []
        for j in 0..<classes {
            var s = 0.0
            for k in 0..<features { s += Double(v[at(j, k)]) * Double(v[at(j, k)]) }
            let norm = s.squareRoot()
            norms.append(norm)
            let factor = norm > 0 ? Float(pow(norm, -exponent)) : 1
            for k in 0..<features { v[at(j, k)] *= factor }
        }
        g.parameters[wi].initializer = .data(TensorData(floats: v, shape: w.shape))
        let spread = String(format: "%.3g–%.3g", norms.min() ?? 0, norms.max() ?? 0)
        return "τ-normalisation T = \(exponent) on \(node.name)'s weight (class norms \(spread)\(node.op == "MatMul" ? ", unit already: a cosine head is unchanged" : ""))"
    }

    /// Adds `shift` [C] to the logits: into a Gemm head's bias when it has a constant one of
    /// shape [C] (or none), else one Sub node after the head.
    private func addToLogits(_ g: inout Graph, headIndex: Int, shift: [Float], logits: Value) throws -> String {
        let head = g.nodes[headIndex]
        let classes = shift.count
        if head.domain.isEmpty, head.op == "Gemm" {
            var beta: Float = 1
            if case .float(let b)? = head.attributes["beta"] { beta = b }
            if head.inputs.count < 3 || head.inputs[2].isEmpty {
                let name = uniqueName("\(head.name).logit_adjustment", taken: Set(g.valueTypes.keys))
                g.parameters.append(Parameter(name: name, shape: [classes], role: .const, initializer: .data(TensorData(floats: shift.map { $0 / beta }, shape: [classes]))))
                var n = head
                while n.inputs.count < 3 { n.inputs.append("") }
                n.inputs[2] = name
                g.nodes[headIndex] = n
                return "logit adjustment τ = \(logitAdjust ?? 0) as \(head.name)'s bias"
            }
            if let bi = g.parameters.firstIndex(where: { $0.name == head.inputs[2] }), let b = g.parameters[bi].initializer.tensor,
               b.dtype == .f32, b.count == classes, b.shape.count == 1 || b.shape == [1, classes],
               g.nodes.filter({ $0.inputs.contains(head.inputs[2]) }).count == 1 {
                let values = zip(b.floats, shift).map { $0 + $1 / beta }
                g.parameters[bi].initializer = .data(TensorData(floats: values, shape: b.shape))
                return "logit adjustment τ = \(logitAdjust ?? 0) folded into \(head.name)'s bias"
            }
        }
        // Otherwise: the head writes to a fresh value, and Sub(·, −shift) writes the logits.
        let taken = Set(g.valueTypes.keys).union(g.nodes.map(\.name))
        let raw = uniqueName("\(logits.name).unadjusted", taken: taken)
        let constant = uniqueName("\(logits.name).logit_adjustment", taken: taken.union([raw]))
        var n = head
        n.outputs = n.outputs.map { $0.name == logits.name ? Value(raw, $0.type) : $0 }
        g.nodes[headIndex] = n
        g.parameters.append(Parameter(name: constant, shape: [classes], role: .const, initializer: .data(TensorData(floats: shift.map { -$0 }, shape: [classes]))))
        // Right after the head, so any node reading the logits reads the adjusted ones.
        g.nodes.insert(Node(name: uniqueName("logit_adjustment", taken: taken.union([raw, constant])), op: "Sub", domain: "",
                            inputs: [raw, constant], outputs: [logits]), at: headIndex + 1)
        return "logit adjustment τ = \(logitAdjust ?? 0) as a Sub after \(head.name)"
    }
}
