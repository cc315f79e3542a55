import COnnxProto
import Foundation
import Graph

// Older and newer opsets' forms of ops rewritten into the IR's (opset-17) forms.
extension Importer {
    /// Adds a constant parameter and returns its name.
    mutating func constant(_ base: String, _ data: TensorData) -> String {
        let name = uniqueValueName(base)
        extraParameters.append(Parameter(name: name, role: .const, data: data))
        return name
    }

    mutating func ints(_ base: String, _ v: [Int]) -> String {
        constant(base, TensorData(int64s: v.map(Int64.init), shape: [v.count]))
    }

    /// Rewrites a node of an older (or newer) opset into the IR's opset-17 form; may expand
    /// into several nodes.
    enum UpgradeProblem: Error { case unsupported(String) }

    mutating func upgrade(_ n: inout Node, opset: Int) throws -> [Node] {
        func nodeFail(_ m: String) -> GraphError { .node(name: n.name, op: n.op, message: m, location: nil) }
        guard n.domain.isEmpty else { return [n] }
        func takeInts(_ key: String) -> [Int]? {
            guard case .ints(let v)? = n.attributes.removeValue(forKey: key) else { return nil }
            return v
        }
        switch n.op {
        case "Clip" where opset < 11:
            let lo = n.attributes.removeValue(forKey: "min"), hi = n.attributes.removeValue(forKey: "max")
            var ins = [n.inputs.first ?? ""]
            if case .float(let v)? = lo { ins.append(constant("\(n.name).min", TensorData(floats: [v], shape: []))) } else { ins.append("") }
            if case .float(let v)? = hi { ins.append(constant("\(n.name).max", TensorData(floats: [v], shape: []))) }
            while ins.last == "" { ins.removeLast() }
            n.inputs = ins
        case "Pad" where opset < 11:
            let pads = takeInts("pads") ?? []
            n.inputs = [n.inputs.first ?? "", ints("\(n.name).pads", pads)]
            if case .float(let v)? = n.attributes.removeValue(forKey: "value"), v != 0 {
                n.inputs.append(constant("\(n.name).value", TensorData(floats: [v], shape: [])))
            }
        case "Slice" where opset < 10:
            let starts = takeInts("starts") ?? [], ends = takeInts("ends") ?? []
            n.inputs = [n.inputs.first ?? "", ints("\(n.name).starts", starts), ints("\(n.name).ends", ends)]
            if let axes = takeInts("axes") { n.inputs.append(ints("\(n.name).axes", axes)) }
        case "Resize" where opset < 11:
            // Resize-10 (X, scales) resized as Upsample: asymmetric coordinates, nearest by floor.
            n.inputs = [n.inputs.first ?? "", "", n.inputs.count > 1 ? n.inputs[1] : ""]
            n.attributes["coordinate_transformation_mode"] = .string("asymmetric")
            if n.attributes["mode"] == nil || n.attributes["mode"] == .string("nearest") { n.attributes["nearest_mode"] = .string("floor") }
        case "Split" where opset < 13:
            if let split = takeInts("split") { n.inputs = [n.inputs.first ?? "", ints("\(n.name).split", split)] }
        case "Squeeze" where opset < 13, "Unsqueeze" where opset < 13:
            if let axes = takeInts("axes") { n.inputs = [n.inputs.first ?? "", ints("\(n.name).axes", axes)] }
        case "ReduceSum" where opset >= 13, "ReduceMean" where opset >= 18, "ReduceL2" where opset >= 18, "ReduceMax" where opset >= 18,
             "ReduceMin" where opset >= 18, "ReduceProd" where opset >= 18, "ReduceSumSquare" where opset >= 18, "ReduceL1" where opset >= 18,
             "ReduceLogSumExp" where opset >= 18:
            let noop: Bool
            if case .int(let v)? = n.attributes.removeValue(forKey: "noop_with_empty_axes") { noop = v != 0 } else { noop = false }
            var axes: [Int] = []
            if n.inputs.count > 1 && !n.inputs[1].isEmpty {
                guard let p = extraParameters.first(where: { $0.name == n.inputs[1] }) ?? graph.parameters.first(where: { $0.name == n.inputs[1] }),
                      let t = p.initializer.tensor else {
                    throw UpgradeProblem.unsupported("\(n.op)-\(opset) with computed axes")
                }
                axes = t.int64s.map { Int($0) }
            }
            n.inputs = [n.inputs.first ?? ""]
            if !axes.isEmpty { n.attributes["axes"] = .ints(axes) } else if noop { n.op = "Identity"; n.attributes = [:] }
        case "Dropout":
            if opset < 12 {
                n.attributes.removeValue(forKey: "is_test")
                if case .float(let r)? = n.attributes.removeValue(forKey: "ratio") {
                    n.inputs = [n.inputs.first ?? "", constant("\(n.name).ratio", TensorData(floats: [r], shape: []))]
                }
            }
        case "BatchNormalization" where opset < 15:
            if case .int(let s)? = n.attributes.removeValue(forKey: "spatial"), s == 0 {
                throw nodeFail("spatial=0 (per-activation statistics) is not supported")
            }
            n.attributes.removeValue(forKey: "is_test")
            n.attributes.removeValue(forKey: "consumed_inputs")
            if n.outputs.count > 1 {
                if opset >= 14, case .int(1)? = n.attributes["training_mode"] { break }
                throw nodeFail("training-mode outputs of BatchNormalization-\(opset) are not supported")
            }
        case "Softmax" where opset < 13, "LogSoftmax" where opset < 13:
            // Old semantics: flatten to 2-D at `axis` (default 1), normalise rows, restore shape.
            var axis = 1
            if case .int(let a)? = n.attributes["axis"] { axis = a }
            // A node without its input or output is left for verification to report.
            guard n.inputs.count == 1, n.outputs.count == 1, let x = n.inputs.first, let y = n.outputs.first else { break }
            let shape = uniqueValueName("\(n.name).shape"), flat = uniqueValueName("\(n.name).flat"), soft = uniqueValueName("\(n.name).2d")
            let t = TensorType(.f32, [])
            return [
                Node(name: uniqueNodeName(shape), op: "Shape", inputs: [x], outputs: [Value(shape, t)]),
                Node(name: uniqueNodeName(flat), op: "Flatten", inputs: [x], outputs: [Value(flat, t)], attributes: ["axis": .int(axis)]),
                Node(name: uniqueNodeName(soft), op: n.op, inputs: [flat], outputs: [Value(soft, t)], attributes: ["axis": .int(1)]),
                Node(name: n.name, op: "Reshape", inputs: [soft, shape], outputs: [y]),
            ]
        default:
            break
        }
        return [n]
    }
}
