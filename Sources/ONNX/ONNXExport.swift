import COnnxProto
import Foundation
import Graph

/// Writes graphs as standard ONNX (opset 17, IR version 8) through protobuf-c.
///
/// Weights go in `raw_data`; the producer is `kiln`; graph metadata becomes
/// `metadata_props`. Every parameter must hold values (materialise rule-initialised graphs
/// first), and only default-domain ops may remain (Kiln-domain ops are lowered before export).
public enum ONNXExport {
    public static let opset: Int64 = 17
    public static let irVersion: Int64 = 8

    public static func bytes(_ input: Graph, producerVersion: String = "0.1.0") throws(GraphError) -> [UInt8] {
        let graph = opset17Forms(input)
        for n in graph.nodes where !(n.domain.isEmpty || n.domain == "ai.onnx") {
            throw GraphError.node(name: n.name, op: n.qualifiedOp, message: "has no lowering to standard ONNX ops", location: nil)
        }
        for n in graph.nodes { if let why = notInOpset(n) { throw GraphError.node(name: n.name, op: n.op, message: why, location: nil) } }
        for p in graph.parameters where p.initializer.tensor == nil {
            throw GraphError.graph(message: "parameter '\(p.name)' has no values to export (initialise the weights first)", location: nil)
        }
        return CArena.with { a in
            let model = a.allocate(Onnx__ModelProto.self)
            onnx__model_proto__init(model)
            model.pointee.has_ir_version = 1
            model.pointee.ir_version = irVersion
            model.pointee.producer_name = a.string("kiln")
            model.pointee.producer_version = a.string(producerVersion)
            let opsetID = a.allocate(Onnx__OperatorSetIdProto.self)
            onnx__operator_set_id_proto__init(opsetID)
            opsetID.pointee.domain = a.string("")
            opsetID.pointee.has_version = 1
            opsetID.pointee.version = opset
            model.pointee.n_opset_import = 1
            model.pointee.opset_import = a.array([opsetID as UnsafeMutablePointer<Onnx__OperatorSetIdProto>?])
            let keys = graph.metadata.keys.sorted()
            model.pointee.n_metadata_props = keys.count
            model.pointee.metadata_props = a.array(keys.map { k -> UnsafeMutablePointer<Onnx__StringStringEntryProto>? in
                let e = a.allocate(Onnx__StringStringEntryProto.self)
                onnx__string_string_entry_proto__init(e)
                e.pointee.key = a.string(k)
                e.pointee.value = a.string(graph.metadata[k]!)
                return e
            })

            let g = a.allocate(Onnx__GraphProto.self)
            onnx__graph_proto__init(g)
            g.pointee.name = a.string(graph.name)
            g.pointee.n_input = graph.inputs.count
            g.pointee.input = a.array(graph.inputs.map { Optional(valueInfo(a, $0)) })
            g.pointee.n_output = graph.outputs.count
            g.pointee.output = a.array(graph.outputs.map { Optional(valueInfo(a, $0)) })
            g.pointee.n_initializer = graph.parameters.count
            g.pointee.initializer = a.array(graph.parameters.map { Optional(a.tensorProto($0.initializer.tensor!, name: $0.name)) })
            g.pointee.n_node = graph.nodes.count
            g.pointee.node = a.array(graph.nodes.map { Optional(node(a, $0)) })
            model.pointee.graph = g

            let size = onnx__model_proto__get_packed_size(model)
            var out = [UInt8](repeating: 0, count: size)
            _ = out.withUnsafeMutableBufferPointer { onnx__model_proto__pack(model, $0.baseAddress) }
            return out
        }
    }

    /// Writes the model atomically (temporary file, then rename).
    /// Why node `n` has no opset-\(opset) form the exporter writes, or nil: ops ONNX added
    /// later (GroupNormalization in the per-channel form of opset 21), and later forms of
    /// Split (`num_outputs`), ScatterND (max and min) and Resize (axes, aspect-ratio policy,
    /// half_pixel_symmetric).
    static func notInOpset(_ n: Node) -> String? {
        let since: [String: Int] = ["Gelu": 20, "Mish": 18, "GroupNormalization": 21, "Swish": 24]
        if let v = since[n.op] { return "is an opset-\(v) op; Kiln writes opset \(opset)" }
        if n.op == "Split", n.attributes["num_outputs"] != nil, n.inputs.count < 2 {
            return "uses num_outputs (opset 18); Kiln writes opset \(opset)"
        }
        if n.op == "ScatterND", case .string(let r)? = n.attributes["reduction"], r == "max" || r == "min" {
            return "uses reduction '\(r)' (opset 18); Kiln writes opset \(opset)"
        }
        if n.op == "Resize", n.attributes["axes"] != nil || n.attributes["keep_aspect_ratio_policy"] != nil || n.attributes["antialias"] != nil
            || n.attributes["coordinate_transformation_mode"] == .string("half_pixel_symmetric") {
            return "uses axes, antialias, keep_aspect_ratio_policy or half_pixel_symmetric (opsets 18–19); Kiln writes opset \(opset)"
        }
        return nil
    }

    /// The IR's forms rewritten into opset 17's where they differ: ReduceSum takes its axes as
    /// an input there (the IR keeps them as the attribute of the other reductions).
    static func opset17Forms(_ graph: Graph) -> Graph {
        var g = graph
        var names = NameTable(graph: g)
        for i in g.nodes.indices where g.nodes[i].domain.isEmpty && g.nodes[i].op == "ReduceSum" {
            guard case .ints(let axes)? = g.nodes[i].attributes.removeValue(forKey: "axes") else { continue }
            let name = names.fresh("\(g.nodes[i].name).axes")
            g.parameters.append(Parameter(name: name, data: TensorData(int64s: axes.map(Int64.init), shape: [axes.count])))
            g.nodes[i].inputs = [g.nodes[i].inputs[0], name]
        }
        return g
    }

    public static func write(_ graph: Graph, to path: String) throws {
        let b = try bytes(graph)
        try Data(b).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func valueInfo(_ a: CArena, _ v: Value) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let vi = a.allocate(Onnx__ValueInfoProto.self)
        onnx__value_info_proto__init(vi)
        vi.pointee.name = a.string(v.name)
        let tp = a.allocate(Onnx__TypeProto.self)
        onnx__type_proto__init(tp)
        let tt = a.allocate(Onnx__TypeProto__Tensor.self)
        onnx__type_proto__tensor__init(tt)
        tt.pointee.has_elem_type = 1
        tt.pointee.elem_type = v.type.dtype.onnxCode
        let shape = a.allocate(Onnx__TensorShapeProto.self)
        onnx__tensor_shape_proto__init(shape)
        shape.pointee.n_dim = v.type.rank
        shape.pointee.dim = a.array(v.type.shape.map { d -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
            let dim = a.allocate(Onnx__TensorShapeProto__Dimension.self)
            onnx__tensor_shape_proto__dimension__init(dim)
            if let value = d.value {
                dim.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                dim.pointee.dim_value = Int64(value)
            } else {
                dim.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                dim.pointee.dim_param = a.string(d.description)
            }
            return dim
        })
        tt.pointee.shape = shape
        tp.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
        tp.pointee.tensor_type = tt
        vi.pointee.type = tp
        return vi
    }

    static func node(_ a: CArena, _ n: Node) -> UnsafeMutablePointer<Onnx__NodeProto> {
        let p = a.allocate(Onnx__NodeProto.self)
        onnx__node_proto__init(p)
        p.pointee.name = a.string(n.name)
        p.pointee.op_type = a.string(n.op)
        p.pointee.domain = a.string("")
        p.pointee.n_input = n.inputs.count
        p.pointee.input = a.array(n.inputs.map { Optional(a.string($0)) })
        p.pointee.n_output = n.outputs.count
        p.pointee.output = a.array(n.outputs.map { Optional(a.string($0.name)) })
        let keys = n.attributes.keys.sorted()
        p.pointee.n_attribute = keys.count
        p.pointee.attribute = a.array(keys.map { Optional(attribute(a, $0, n.attributes[$0]!)) })
        return p
    }

    static func attribute(_ a: CArena, _ name: String, _ value: Attribute) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let p = a.allocate(Onnx__AttributeProto.self)
        onnx__attribute_proto__init(p)
        p.pointee.name = a.string(name)
        p.pointee.has_type = 1
        switch value {
        case .int(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
            p.pointee.has_i = 1
            p.pointee.i = Int64(v)
        case .float(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
            p.pointee.has_f = 1
            p.pointee.f = v
        case .string(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
            p.pointee.has_s = 1
            p.pointee.s = a.bytes(Array(v.utf8))
        case .ints(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
            p.pointee.n_ints = v.count
            p.pointee.ints = a.array(v.map(Int64.init))
        case .floats(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
            p.pointee.n_floats = v.count
            p.pointee.floats = a.array(v)
        case .strings(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
            p.pointee.n_strings = v.count
            p.pointee.strings = a.array(v.map { a.bytes(Array($0.utf8)) })
        case .tensor(let t):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
            p.pointee.t = a.tensorProto(t, name: "")
        }
        return p
    }
}
