import Compiler
import Foundation
import Graph

/// Post-training int8 quantization into a standard QDQ model: which float tensors are
/// quantized, their scales and zero points from calibration ranges, and the graph with
/// QuantizeLinear → DequantizeLinear pairs on those tensors and DequantizeLinear on int8
/// weights and int32 biases (the layout onnxruntime's quantizer writes and runs on its int8
/// kernels).
///
/// - Activations: per tensor, uint8 asymmetric (or int8), the range widened to hold 0 so
///   that zero (padding, ReLU's floor) is exact.
/// - Weights of Conv, Gemm and MatMul: int8 symmetric in [−63, 63] (7 bits, the default) or [−127, 127], per output channel
///   (or per tensor); biases int32 with scale = input scale × weight scale, zero point 0.
/// - A Relu or Clip whose output's quantization starts at 0 (zero point = the type's
///   lowest value) is removed: the quantization clamps as it did.
public enum Quantization {
    /// How activation ranges are chosen from the calibration values.
    public enum Method: Sendable, Equatable, CustomStringConvertible {
        /// The smallest and largest value seen.
        case minMax
        /// The values at the `p` and 100 − `p` percentiles (p in (50, 100]): outliers clipped.
        case percentile(Double)

        public var description: String {
            switch self {
            case .minMax: return "min/max"
            case .percentile(let p): return "percentile \(p)"
            }
        }
    }

    public struct Options: Sendable, Equatable {
        public var method: Method
        /// uint8 (asymmetric, the usual choice) or int8 activations.
        public var activations: DType
        /// Per-output-channel weight scales (else one per weight).
        public var perChannel: Bool
        /// Weight precision: 7 bits ([−63, 63], the default) or 8 ([−127, 127]): with 7, a pair of
        /// uint8 × int8 products fits int16, so x86 kernels without VNNI (vpmaddubsw, as
        /// onnxruntime's on AVX2) cannot saturate.
        public var weightBits: Int

        public init(method: Method = .minMax, activations: DType = .u8, perChannel: Bool = true, weightBits: Int = 7) {
            self.method = method
            self.activations = activations
            self.perChannel = perChannel
            self.weightBits = weightBits
        }
    }

    /// A per-tensor quantization: scale, zero point and the type's range.
    public struct Parameters: Sendable, Equatable {
        public var scale: Float
        public var zeroPoint: Int
        public var type: DType
        public var qmin: Int { type == .i8 ? -128 : 0 }
        public var qmax: Int { type == .i8 ? 127 : 255 }

        /// The parameters for values in [lo, hi] (widened to hold 0).
        public init(range lo: Float, _ hi: Float, type: DType) {
            self.type = type
            let rmin = min(0, lo.isFinite ? lo : 0), rmax = max(0, hi.isFinite ? hi : 0)
            let qmin = Float(type == .i8 ? -128 : 0), qmax = Float(type == .i8 ? 127 : 255)
            guard rmax > rmin else { scale = 1; zeroPoint = Int(qmin); return }
            scale = (rmax - rmin) / (qmax - qmin)
            zeroPoint = Int(min(max((qmin - rmin / scale).rounded(.toNearestOrEven), qmin), qmax))
        }
    }

    /// The ops whose float activations (inputs and outputs) are quantized.
    static let quantizedOps: Set<String> = ["Conv", "Gemm", "MatMul", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Concat",
                                            "Relu", "Clip"]

    /// The graph a model is quantized from: BatchNormalization folded into the convolutions
    /// and constants folded, so the int8 weights are the ones that run.
    public static func prepared(_ graph: Graph) throws -> Graph {
        try Pipeline.run(graph, passes: [.deadCodeElimination, .removeIdentities, .foldConstants, .foldBatchNorm])
    }

    /// The float activations a QDQ model of `graph` quantizes: every float input and output
    /// of its Conv, Gemm, MatMul, Add, pooling, Concat, Relu and Clip nodes that is not a
    /// constant or a graph output, in graph order.
    public static func activationTensors(_ graph: Graph) -> [String] {
        let types = graph.valueTypes
        let constants = Set(graph.parameters.map(\.name)), outputs = Set(graph.outputs.map(\.name))
        var seen = Set<String>(), list: [String] = []
        func add(_ v: String) {
            guard !v.isEmpty, !constants.contains(v), !outputs.contains(v), types[v]?.dtype == .f32, seen.insert(v).inserted else { return }
            list.append(v)
        }
        for n in graph.nodes where n.domain.isEmpty && quantizedOps.contains(n.op) {
            // Clip's bounds and Conv's/Gemm's weights and biases are not activations.
            let data = ["Clip", "Conv", "Gemm"].contains(n.op) ? Array(n.inputs.prefix(n.op == "Gemm" ? 2 : 1)) : n.inputs
            data.forEach(add)
            n.outputs.map(\.name).forEach(add)
        }
        return list
    }

    /// `graph` (as `prepared` returns it) with the activations of `ranges` and the weights
    /// quantized, as a QDQ model.
    public static func quantize(_ graph: Graph, ranges: [String: (lo: Float, hi: Float)], options: Options = Options()) throws -> Graph {
        precondition((2...8).contains(options.weightBits), "weight bits must be from 2 to 8")
        var g = graph
        var params: [String: Parameters] = [:]
        for (name, r) in ranges { params[name] = Parameters(range: r.lo, r.hi, type: options.activations) }
        removeClampingActivations(&g, &params)
        var taken = Set(g.parameters.map(\.name) + g.inputs.map(\.name) + g.nodes.flatMap { $0.outputs.map(\.name) })
        func fresh(_ base: String) -> String {
            let n = uniqueName(base, taken: taken)
            taken.insert(n)
            return n
        }
        let types = g.valueTypes
        var newParameters: [Parameter] = []
        // Activations: Q → DQ after the producer; every reader takes the DQ's output.
        var dequantized: [String: String] = [:]
        var pairs: [String: [Node]] = [:]
        for (name, p) in params.sorted(by: { $0.key < $1.key }) {
            guard let t = types[name] else { continue }
            let scale = fresh(name + "_scale"), zero = fresh(name + "_zero_point")
            newParameters.append(Parameter(name: scale, data: TensorData(floats: [p.scale], shape: [])))
            newParameters.append(Parameter(name: zero, data: TensorData(dtype: p.type, shape: [], integers: [Int64(p.zeroPoint)])))
            let q = fresh(name + "_quantized"), dq = fresh(name + "_dequantized")
            pairs[name] = [
                Node(name: fresh(name + "_QuantizeLinear"), op: "QuantizeLinear", inputs: [name, scale, zero], outputs: [Value(q, TensorType(p.type, t.shape))]),
                Node(name: fresh(name + "_DequantizeLinear"), op: "DequantizeLinear", inputs: [q, scale, zero], outputs: [Value(dq, t)]),
            ]
            dequantized[name] = dq
        }
        // Weights and biases: int8 (int32) constants behind a DequantizeLinear.
        var weightNodes: [Node] = []
        var quantizedWeights: [String: String] = [:]
        func dequantizeConstant(_ name: String, _ values: TensorData, _ scales: [Float], axis: Int, bits32: Bool) -> String {
            let key = name + (bits32 ? "#bias" : "")
            if let done = quantizedWeights[key] { return done }
            let shape = values.shape, f = values.floats
            let inner = shape[(axis + 1)...].reduce(1, *), size = shape.isEmpty ? 1 : shape[axis]
            let q: [Int64] = f.indices.map { k in
                let s = scales.count == 1 ? scales[0] : scales[(k / inner) % size]
                let v = (f[k] / s).rounded(.toNearestOrEven)
                let limit: Float = bits32 ? 2_147_483_520 : 127
                return v.isNaN ? 0 : Int64(min(max(v, -limit), limit))
            }
            let qName = fresh(name + "_quantized"), sName = fresh(name + "_scale"), out = fresh(name + "_dequantized")
            newParameters.append(Parameter(name: qName, data: TensorData(dtype: bits32 ? .i32 : .i8, shape: shape, integers: q)))
            newParameters.append(Parameter(name: sName, data: TensorData(floats: scales, shape: scales.count == 1 ? [] : [scales.count])))
            var inputs = [qName, sName]
            if !bits32 {
                let zName = fresh(name + "_zero_point")
                newParameters.append(Parameter(name: zName, data: TensorData(dtype: .i8, shape: scales.count == 1 ? [] : [scales.count],
                                                                             integers: Array(repeating: 0, count: scales.count))))
                inputs.append(zName)
            }
            weightNodes.append(Node(name: fresh(name + "_DequantizeLinear"), op: "DequantizeLinear", inputs: inputs,
                                    outputs: [Value(out, TensorType(.f32, shape.map { Dim($0) }))],
                                    attributes: scales.count == 1 ? [:] : ["axis": .int(axis)]))
            quantizedWeights[key] = out
            return out
        }
        func weightScales(_ w: TensorData, axis: Int) -> [Float] {
            let f = w.floats, shape = w.shape
            let inner = shape[(axis + 1)...].reduce(1, *), size = shape[axis]
            var absMax = [Float](repeating: 0, count: options.perChannel ? size : 1)
            for (k, v) in f.enumerated() where v.isFinite {
                let c = options.perChannel ? (k / inner) % size : 0
                absMax[c] = max(absMax[c], abs(v))
            }
            let levels = Float((1 << (options.weightBits - 1)) - 1)
            return absMax.map { $0 > 0 ? $0 / levels : 1 }
        }
        for i in g.nodes.indices {
            let n = g.nodes[i]
            guard n.domain.isEmpty, ["Conv", "Gemm", "MatMul"].contains(n.op), n.inputs.count >= 2,
                  let w = g.parameter(named: n.inputs[1])?.initializer.tensor, w.dtype == .f32, w.shape.count >= 2 else { continue }
            let axis: Int
            switch n.op {
            case "Conv": axis = 0
            case "Gemm": axis = n.intAttribute("transB", 0) != 0 ? 0 : 1
            default: guard w.shape.count == 2 else { continue }; axis = 1
            }
            let scales = weightScales(w, axis: axis)
            var node = n
            node.inputs[1] = dequantizeConstant(n.inputs[1], w, scales, axis: axis, bits32: false)
            // The bias in int32 on the grid of input scale × weight scale (Gemm only in its plain form).
            let plainGemm = n.op != "Gemm" || (n.floatAttribute("alpha", 1) == 1 && n.floatAttribute("beta", 1) == 1 && n.intAttribute("transA", 0) == 0)
            if n.op != "MatMul", plainGemm, n.inputs.count > 2, let b = g.parameter(named: n.inputs[2])?.initializer.tensor, b.dtype == .f32,
               b.shape == [w.shape[axis]], let x = params[n.inputs[0]] {
                let biasScales = (scales.count == 1 ? Array(repeating: scales[0], count: b.count) : scales).map { x.scale * $0 }
                node.inputs[2] = dequantizeConstant(n.inputs[2], b, biasScales, axis: 0, bits32: true)
            }
            g.nodes[i] = node
        }
        // The nodes in order: weight dequantizations first, then each node followed by the
        // Q → DQ pairs of its outputs; readers take the dequantized values.
        var nodes = weightNodes
        for v in g.inputs { nodes += pairs[v.name] ?? [] }
        for var n in g.nodes {
            n.inputs = n.inputs.map { dequantized[$0] ?? $0 }
            nodes.append(n)
            for o in n.outputs { nodes += pairs[o.name] ?? [] }
        }
        g.nodes = nodes
        g.parameters += newParameters
        g.metadata["kiln.quantization"] = "int8 QDQ: activations \(options.activations == .u8 ? "uint8 asymmetric" : "int8 asymmetric") per tensor (\(options.method)), "
            + "weights int8 symmetric per \(options.perChannel ? "channel" : "tensor")\(options.weightBits == 8 ? "" : " in \(options.weightBits) bits"), biases int32"
        return try eliminateDeadCode(g).verified()
    }

    /// Removes each Relu and Clip whose output is quantized from zero up (its zero point the
    /// type's lowest value) and whose input is read by it alone: the quantization of the input,
    /// with the output's parameters, clamps the same way.
    static func removeClampingActivations(_ g: inout Graph, _ params: inout [String: Parameters]) {
        var readers: [String: Int] = [:]
        for n in g.nodes { for i in n.inputs where !i.isEmpty { readers[i, default: 0] += 1 } }
        let outputs = Set(g.outputs.map(\.name)), inputs = Set(g.inputs.map(\.name))
        var renames: [String: String] = [:]
        let parameters = Dictionary(g.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        g.nodes.removeAll { n in
            guard n.domain.isEmpty, n.op == "Relu" || n.op == "Clip", let x = n.inputs.first, let y = n.outputs.first?.name,
                  let p = params[y], p.zeroPoint == p.qmin, params[x] != nil, readers[x] == 1, !outputs.contains(x), !inputs.contains(x)
            else { return false }
            if n.op == "Clip", n.inputs.count > 1, !n.inputs[1].isEmpty {
                // A lower bound above 0 clamps where the quantization does not.
                guard let lo = parameters[n.inputs[1]]?.initializer.tensor, lo.count == 1, lo.double(at: 0) <= 0 else { return false }
            }
            params[x] = p
            params[y] = nil
            renames[y] = x
            return true
        }
        for i in g.nodes.indices { g.nodes[i].inputs = g.nodes[i].inputs.map { renames[$0] ?? $0 } }
    }
}
