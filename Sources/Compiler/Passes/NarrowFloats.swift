import Graph

extension Pass {
    /// f64, f16 and bf16 values become f32: the compiled path's kernels compute in f32 (f16
    /// and bf16 values are exact in it; f64 values round to it). `CompiledModel` converts the
    /// graph's inputs and outputs at the program's boundary, so callers still pass and get
    /// the declared types.
    public static let narrowFloats = Pass("narrow-floats", summary: "compute f64, f16 and bf16 values in f32") { g in
        narrowedFloats(g)
    }
}

/// Element types the compiled path holds as f32 and computes in f32.
let narrowedTypes: Set<DType> = [.f64, .f16, .bf16]

/// `graph` with every f64, f16 and bf16 value, parameter, tensor attribute and Cast target
/// in f32 (a graph without them is returned as it is).
public func narrowedFloats(_ graph: Graph) -> Graph {
    func narrow(_ t: TensorType) -> TensorType {
        narrowedTypes.contains(t.dtype) ? TensorType(.f32, t.shape) : t
    }
    func narrow(_ t: TensorData) -> TensorData {
        narrowedTypes.contains(t.dtype) ? TensorData(dtype: .f32, shape: t.shape, values: t.doubles) : t
    }
    var g = graph
    for i in g.inputs.indices { g.inputs[i].type = narrow(g.inputs[i].type) }
    for i in g.outputs.indices { g.outputs[i].type = narrow(g.outputs[i].type) }
    for i in g.parameters.indices where narrowedTypes.contains(g.parameters[i].dtype) {
        g.parameters[i].dtype = .f32
        if case .data(let t) = g.parameters[i].initializer { g.parameters[i].initializer = .data(narrow(t)) }
    }
    for i in g.nodes.indices {
        for k in g.nodes[i].outputs.indices { g.nodes[i].outputs[k].type = narrow(g.nodes[i].outputs[k].type) }
        for (key, value) in g.nodes[i].attributes {
            switch value {
            case .tensor(let t) where narrowedTypes.contains(t.dtype):
                g.nodes[i].attributes[key] = .tensor(narrow(t))
            // Cast's target (and any dtype-valued attribute: EyeLike, the Random ops).
            case .int(let code) where ["to", "dtype", "output_dtype"].contains(key):
                if let d = DType(onnxCode: Int32(code)), narrowedTypes.contains(d) { g.nodes[i].attributes[key] = .int(Int(DType.f32.onnxCode)) }
            default: break
            }
        }
    }
    return g
}
