import COnnxProto
import Foundation
import Graph

/// Reads `.onnx` files into graphs in Kiln's IR (ONNX opset 17 forms).
///
/// Opsets 7 to 28 of the default domain are accepted (the later ones only widen type
/// constraints of the catalogue's ops); attributes that later opsets moved to
/// inputs (Clip, Pad, Slice, Squeeze/Unsqueeze, Dropout) become constant inputs, ReduceMean-18's and ReduceL2-18's
/// axes input becomes the attribute, pre-13 Softmax/LogSoftmax become Flatten → Softmax →
/// Reshape, and BatchNormalization drops its retired attributes.
public enum ONNXImport {
    public static let supportedOpsets = 7...28

    /// Loads and verifies a model file; external data is read relative to its folder.
    ///
    /// - Parameter constants: values for graph inputs that decide shapes (Reshape targets,
    ///   Slice bounds given as inputs): those inputs become constants before verification,
    ///   since Kiln plans static shapes.
    public static func load(path: String, constants: [String: TensorData] = [:]) throws(GraphError) -> Graph {
        // Mapped, not read: the protobuf parser copies what it keeps, and the mapping is
        // released before the import so the file's pages do not add to peak memory.
        let model: UnsafeMutablePointer<Onnx__ModelProto>
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
            model = try unpack(data, path: path)
        } catch let error as GraphError {
            throw error
        } catch {
            throw GraphError.file(path: path, message: "cannot read: \(error.localizedDescription)")
        }
        return try graph(from: model, path: path, baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent(),
                         constants: constants)
    }

    public static func graph(from bytes: some DataProtocol & ContiguousBytes, path: String, baseDirectory: URL?,
                             constants: [String: TensorData] = [:]) throws(GraphError) -> Graph {
        try graph(from: unpack(bytes, path: path), path: path, baseDirectory: baseDirectory, constants: constants)
    }

    private static func unpack(_ bytes: some DataProtocol & ContiguousBytes, path: String) throws(GraphError) -> UnsafeMutablePointer<Onnx__ModelProto> {
        guard !bytes.isEmpty else { throw GraphError.file(path: path, message: "empty file, not an ONNX model") }
        guard let model = bytes.withUnsafeBytes({ raw in
            onnx__model_proto__unpack(nil, raw.count, raw.baseAddress?.assumingMemoryBound(to: UInt8.self))
        }) else {
            throw GraphError.file(path: path, message: "not a valid ONNX model (protobuf parse failed: truncated or not ONNX)")
        }
        return model
    }

    /// Imports an unpacked model and frees it.
    private static func graph(from model: UnsafeMutablePointer<Onnx__ModelProto>, path: String, baseDirectory: URL?,
                              constants: [String: TensorData]) throws(GraphError) -> Graph {
        defer { onnx__model_proto__free_unpacked(model, nil) }
        do {
            var importer = Importer(model: model, baseDirectory: baseDirectory, constants: constants)
            return try importer.run()
        } catch {
            switch error {
            case .graph(let m, nil): throw GraphError.file(path: path, message: m)
            default: throw GraphError.file(path: path, message: error.description)
            }
        }
    }
}

struct Importer {
    let model: UnsafeMutablePointer<Onnx__ModelProto>
    let baseDirectory: URL?
    let constants: [String: TensorData]
    var opsets: [String: Int] = [:]
    var graph = Graph(name: "")
    var names = NameTable()
    var nodeNames = NameTable()
    var extraParameters: [Parameter] = []

    init(model: UnsafeMutablePointer<Onnx__ModelProto>, baseDirectory: URL?, constants: [String: TensorData]) {
        self.model = model
        self.baseDirectory = baseDirectory
        self.constants = constants
    }

    func fail(_ m: String) -> GraphError { .graph(message: m, location: nil) }

    /// Long by choice: the model's parts in file order (opsets, initialisers, inputs, nodes
    /// with their upgrades, outputs), each check next to the field it reads.
    mutating func run() throws(GraphError) -> Graph {
        let m = model.pointee
        for i in 0..<m.n_opset_import {
            let o = m.opset_import[i]!.pointee
            let domain = str(o.domain) == "ai.onnx" ? "" : str(o.domain)
            opsets[domain] = Int(o.version)
        }
        guard let g = m.graph?.pointee else { throw fail("the model has no graph") }
        guard let opset = opsets[""] else { throw fail("the model imports no opset of the default ONNX domain") }
        guard ONNXImport.supportedOpsets.contains(opset) else {
            throw fail("opset \(opset) is not supported (Kiln imports opsets \(ONNXImport.supportedOpsets.lowerBound) to \(ONNXImport.supportedOpsets.upperBound))")
        }
        graph.name = str(g.name).isEmpty ? "model" : str(g.name)
        for i in 0..<m.n_metadata_props {
            let e = m.metadata_props[i]!.pointee
            graph.metadata[str(e.key)] = str(e.value)
        }

        // Initialisers become parameters; their roles are settled once nodes are known.
        var initialisers = Set<String>()
        for i in 0..<g.n_initializer {
            let t = g.initializer[i]!
            let name = str(t.pointee.name)
            guard !name.isEmpty else { throw fail("initializer \(i) has no name") }
            let data = try TensorData.fromProto(t, baseDirectory: baseDirectory, what: "initializer '\(name)'")
            // The parser's copy of the bytes is no longer needed: free it now rather than with
            // the whole message, so a model's weights are held twice at most while importing.
            if t.pointee.has_raw_data != 0, let raw = t.pointee.raw_data.data {
                free(raw)
                t.pointee.raw_data = ProtobufCBinaryData(len: 0, data: nil)
            }
            guard initialisers.insert(name).inserted else { throw fail("initializer '\(name)' is defined twice") }
            graph.parameters.append(Parameter(name: name, role: data.dtype.isFloatingPoint ? .param : .const, data: data))
        }
        names = NameTable(initialisers)

        for i in 0..<g.n_input {
            let v = g.input[i]!.pointee
            let name = str(v.name)
            if initialisers.contains(name) { continue }  // IR < 4 lists initialisers as inputs
            guard let type = try valueType(v, what: "graph input '\(name)'") else {
                throw fail("graph input '\(name)' has no tensor type")
            }
            if let value = constants[name] {
                guard value.dtype == type.dtype, value.shape.count == type.rank else {
                    throw fail("the value given for input '\(name)' is \(value.type), the input is \(type)")
                }
                graph.parameters.append(Parameter(name: name, role: .const, data: value))
                names.reserve([name])
                continue
            }
            graph.inputs.append(Value(name, type))
            names.reserve([name])
        }

        var unsupported: [(String, String)] = []  // (op@opset, first node)
        var seenUnsupported = Set<String>()
        var undeclared = Set<String>()
        for i in 0..<g.n_node {
            let n = g.node[i]!.pointee
            var node = try convertNode(n, index: i)
            let version = opsets[node.domain] ?? 0
            if OpCatalogue.schema(domain: node.domain, op: node.op) == nil {
                let key = "\(node.qualifiedOp) (opset \(version))"
                if seenUnsupported.insert(key).inserted { unsupported.append((key, node.name)) }
                continue
            }
            let converted: [Node]
            do {
                converted = try upgrade(&node, opset: version)
            } catch UpgradeProblem.unsupported(let what) {
                if seenUnsupported.insert(what).inserted { unsupported.append((what, node.name)) }
                continue
            } catch let e as GraphError {
                throw e
            } catch {
                throw fail("\(error)")
            }
            for c in converted {
                for o in c.outputs { undeclared.insert(o.name) }
                graph.nodes.append(c)
            }
        }
        if !unsupported.isEmpty {
            let list = unsupported.map { "\($0.0), first used by node '\($0.1)'" }.joined(separator: "; ")
            throw fail("unsupported op\(unsupported.count > 1 ? "s" : ""): \(list)")
        }
        graph.parameters += extraParameters

        var undeclaredOutputs = Set<String>()
        for i in 0..<g.n_output {
            let v = g.output[i]!.pointee
            let name = str(v.name)
            if let t = try valueType(v, what: "graph output '\(name)'", shapeRequired: false) {
                graph.outputs.append(Value(name, t))
            } else {
                graph.outputs.append(Value(name, TensorType(.f32, [])))
                undeclaredOutputs.insert(name)
            }
        }
        // Declared output shapes in exported files often use other symbol names than the
        // inputs; the inferred type is the one Kiln trusts.
        undeclaredOutputs.formUnion(graph.outputs.map(\.name))
        assignRoles()
        return try graph.topologicallySorted().verified(undeclared: undeclared, undeclaredOutputs: undeclaredOutputs)
    }

    /// BatchNorm statistics are buffers; float initialisers used only as shape-like inputs
    /// (Clip bounds, Pad values) stay trainable-looking but harmless.
    mutating func assignRoles() {
        var buffers = Set<String>()
        for n in graph.nodes where n.op == "BatchNormalization" && n.inputs.count == 5 {
            buffers.insert(n.inputs[3])
            buffers.insert(n.inputs[4])
        }
        for i in graph.parameters.indices where buffers.contains(graph.parameters[i].name) {
            graph.parameters[i].role = .buffer
        }
    }

    func valueType(_ v: Onnx__ValueInfoProto, what: String, shapeRequired: Bool = true) throws(GraphError) -> TensorType? {
        guard let tp = v.type?.pointee, tp.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tt = tp.tensor_type?.pointee else {
            return nil
        }
        guard let dtype = DType(onnxCode: tt.elem_type) else {
            throw fail("\(what) has element type \(DType.onnxName(tt.elem_type)), which Kiln does not support")
        }
        guard let shape = tt.shape?.pointee else {
            if shapeRequired { throw fail("\(what) has no shape (Kiln needs the rank)") }
            return nil
        }
        guard shape.n_dim <= ONNXLimits.maxRank else { throw fail("\(what) has rank \(shape.n_dim)") }
        var dims: Shape = []
        for j in 0..<shape.n_dim {
            let d = shape.dim[j]!.pointee
            switch d.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                guard d.dim_value >= 0, d.dim_value <= Int64(ONNXLimits.maxTensorBytes) else {
                    throw fail("\(what) has dimension \(d.dim_value)")
                }
                dims.append(Dim(Int(d.dim_value)))
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                dims.append(Dim(symbol: symbolName(str(d.dim_param), axis: j)))
            default:
                dims.append(Dim(symbol: j == 0 ? "N" : "D\(j)"))
            }
        }
        return TensorType(dtype, dims)
    }

    /// Dimension names as text IR identifiers.
    func symbolName(_ s: String, axis: Int) -> String {
        var out = String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
        if out.isEmpty { out = axis == 0 ? "N" : "D\(axis)" }
        if let f = out.first, f.isNumber { out = "_" + out }
        return out
    }

    mutating func uniqueNodeName(_ base: String) -> String { nodeNames.fresh(base) }

    mutating func uniqueValueName(_ base: String) -> String { names.fresh(base) }

    mutating func convertNode(_ n: Onnx__NodeProto, index: Int) throws(GraphError) -> Node {
        let op = str(n.op_type)
        var domain = str(n.domain)
        if domain == "ai.onnx" { domain = "" }
        let name = uniqueNodeName(str(n.name).isEmpty ? "\(op)_\(index)" : str(n.name))
        let inputs = (0..<n.n_input).map { str(n.input[$0]) }
        var outputs = (0..<n.n_output).map { Value(str(n.output[$0]), TensorType(.f32, [])) }
        while outputs.last?.name.isEmpty == true { outputs.removeLast() }
        for o in outputs where !o.name.isEmpty { names.reserve([o.name]) }
        var attributes: [String: Attribute] = [:]
        for i in 0..<n.n_attribute {
            let a = n.attribute[i]!.pointee
            let aname = str(a.name)
            attributes[aname] = try attribute(a, node: name, op: op)
        }
        return Node(name: name, op: op, domain: domain, inputs: inputs, outputs: outputs, attributes: attributes)
    }

    func attribute(_ a: Onnx__AttributeProto, node: String, op: String) throws(GraphError) -> Attribute {
        func nodeFail(_ m: String) -> GraphError { .node(name: node, op: op, message: m, location: nil) }
        let aname = str(a.name)
        if a.ref_attr_name != nil { throw nodeFail("attribute '\(aname)' refers to a function attribute, which Kiln does not support") }
        var type = a.has_type != 0 ? a.type : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED
        if type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED {
            // IR version 1 files leave the type out; take it from the field that is set.
            if a.has_f != 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT }
            else if a.has_i != 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT }
            else if a.has_s != 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING }
            else if a.t != nil { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR }
            else if a.n_floats > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS }
            else if a.n_ints > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS }
            else if a.n_strings > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS }
        }
        func string(_ b: ProtobufCBinaryData) -> String {
            b.len == 0 ? "" : String(decoding: UnsafeBufferPointer(start: b.data, count: b.len), as: UTF8.self)
        }
        switch type {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return .float(a.f)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return .int(Int(a.i))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return .string(string(a.s))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: return .floats((0..<a.n_floats).map { a.floats[$0] })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return .ints((0..<a.n_ints).map { Int(a.ints[$0]) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return .strings((0..<a.n_strings).map { string(a.strings[$0]) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            guard let t = a.t else { throw nodeFail("attribute '\(aname)' is a tensor without a value") }
            do {
                return .tensor(try TensorData.fromProto(t, baseDirectory: baseDirectory, what: "attribute '\(aname)'"))
            } catch {
                if case .graph(let m, _) = error { throw nodeFail(m) }
                throw error
            }
        default:
            throw nodeFail("attribute '\(aname)' has type \(type.rawValue) (graphs, sparse tensors and type protos are not supported)")
        }
    }

}

extension ONNXImport {
    /// The names and element types of a model's real inputs (initialisers excluded), in
    /// order, without importing the graph: what test data and `kiln run` bind inputs to.
    public static func inputSignature(path: String) throws(GraphError) -> [(name: String, dtype: DType?)] {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else {
            throw GraphError.file(path: path, message: "cannot read the model, or it is empty")
        }
        let bytes = [UInt8](data)
        guard let model = bytes.withUnsafeBufferPointer({ onnx__model_proto__unpack(nil, $0.count, $0.baseAddress) }) else {
            throw GraphError.file(path: path, message: "not a valid ONNX model (protobuf parse failed: truncated or not ONNX)")
        }
        defer { onnx__model_proto__free_unpacked(model, nil) }
        guard let g = model.pointee.graph?.pointee else { throw GraphError.file(path: path, message: "the model has no graph") }
        let inits = Set((0..<g.n_initializer).map { str(g.initializer[$0]!.pointee.name) })
        var out: [(String, DType?)] = []
        for i in 0..<g.n_input {
            let v = g.input[i]!.pointee
            let name = str(v.name)
            if inits.contains(name) { continue }
            var dtype: DType? = nil
            if let tp = v.type?.pointee, tp.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tt = tp.tensor_type {
                dtype = DType(onnxCode: tt.pointee.elem_type)
            }
            out.append((name, dtype))
        }
        return out
    }

    /// Names read by some node of the default domain at an input its schema marks as deciding
    /// shapes (`OpSchema.compileTimeInputs`: Resize's roi, scales, sizes), without importing.
    public static func compileTimeValues(path: String) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return [] }
        let bytes = [UInt8](data)
        guard let model = bytes.withUnsafeBufferPointer({ onnx__model_proto__unpack(nil, $0.count, $0.baseAddress) }) else { return [] }
        defer { onnx__model_proto__free_unpacked(model, nil) }
        guard let g = model.pointee.graph?.pointee else { return [] }
        var names = Set<String>()
        for i in 0..<g.n_node {
            let n = g.node[i]!.pointee
            guard str(n.domain).isEmpty || str(n.domain) == "ai.onnx", let schema = OpCatalogue.schema(domain: "", op: str(n.op_type)) else { continue }
            for k in schema.compileTimeInputs where k < n.n_input { names.insert(str(n.input[k])) }
        }
        names.remove("")
        return names
    }
}
