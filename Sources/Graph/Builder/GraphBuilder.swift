/// Builds a graph node by node, inferring each output's type as it goes, so a mistake is
/// reported at the node that makes it. The one graph builder: models in Swift start from an
/// empty one, the autodiff continues a verified graph (`init(continuing:)`) with fresh names.
///
/// ```swift
/// let b = GraphBuilder(name: "tiny")
/// let x = b.input("x", TensorType(.f32, [Dim(symbol: "N"), 4]))
/// let w = b.parameter("fc.weight", [2, 4], .kaimingNormal(.fanIn))
/// let y = try b.op("Gemm", name: "fc", [x, w], ["transB": .int(1)])
/// b.output(y)
/// let graph = try b.build()
/// ```
public final class GraphBuilder {
    public private(set) var graph: Graph
    private var types: [String: TensorType] = [:]
    private var known: [String: KnownInts] = [:]
    private var nodeNames = Set<String>()
    /// Every value and node name, for fresh names.
    private var names = NameTable()

    public init(name: String, metadata: [String: String] = [:]) {
        graph = Graph(name: name, metadata: metadata)
    }

    /// Continues `graph` (verified): new nodes see its values' types and constants' values.
    public init(continuing graph: Graph) {
        self.graph = graph
        types = graph.valueTypes
        for p in graph.parameters { if let t = p.initializer.tensor, let k = knownInts(of: t) { known[p.name] = k } }
        nodeNames = Set(graph.nodes.map(\.name))
        names = NameTable(graph: graph)
    }

    /// A name from `base` that no value or node has yet, now taken.
    public func fresh(_ base: String) -> String { names.fresh(base) }

    /// The type of a value defined so far.
    public func type(of name: String) -> TensorType? { types[name] }

    /// The static shape of a value defined so far (symbolic dims left as they are).
    public func shape(of name: String) -> Shape { types[name]?.shape ?? [] }

    private func claim(_ name: String) {
        precondition(types[name] == nil, "GraphBuilder: value '\(name)' is defined twice")
        names.reserve([name])
    }

    @discardableResult
    public func input(_ name: String, _ type: TensorType) -> String {
        claim(name)
        graph.inputs.append(Value(name, type))
        types[name] = type
        return name
    }

    @discardableResult
    public func parameter(_ name: String, _ shape: [Int], _ initializer: Initializer, role: ParameterRole = .param,
                          dtype: DType = .f32) -> String {
        claim(name)
        let p = Parameter(name: name, dtype: dtype, shape: shape, role: role, initializer: initializer)
        graph.parameters.append(p)
        types[name] = p.type
        if let t = initializer.tensor, let k = knownInts(of: t) { known[name] = k }
        return name
    }

    /// An int64 constant (Reshape targets, Slice bounds, Pad widths); reused when the same
    /// name was already declared.
    @discardableResult
    public func constant(_ name: String, ints: [Int]) -> String {
        if types[name] != nil { return name }
        return parameter(name, [ints.count], .data(TensorData(int64s: ints.map(Int64.init), shape: [ints.count])), role: .const, dtype: .i64)
    }

    /// Adds a node; its outputs are named `outputs`, or `name` (then `name.1`, …) by default.
    @discardableResult
    public func node(_ op: String, domain: String = "", name: String, _ inputs: [String],
                     _ attributes: [String: Attribute] = [:], outputs: [String]? = nil, outputCount: Int = 1) throws(GraphError) -> [String] {
        let outNames = outputs ?? (0..<outputCount).map { $0 == 0 ? name : "\(name).\($0)" }
        try add(Node(name: name, op: op, domain: domain, inputs: inputs,
                     outputs: outNames.map { Value($0, TensorType(.f32, [])) }, attributes: attributes))
        return outNames
    }

    /// Adds `node` as it is (a node of another graph), its output types inferred.
    public func add(_ node: Node) throws(GraphError) {
        precondition(nodeNames.insert(node.name).inserted, "GraphBuilder: node '\(node.name)' is defined twice")
        names.reserve([node.name])
        graph.nodes.append(try inferred(node, replacing: []))
    }

    /// `node` with its output types inferred from its inputs', its outputs declared (those of
    /// `replacing`, the node it takes the place of, are redefined).
    private func inferred(_ node: Node, replacing: [Value]) throws(GraphError) -> Node {
        var inputTypes: [TensorType?] = []
        var inputKnown: [KnownInts?] = []
        for i in node.inputs {
            if i.isEmpty { inputTypes.append(nil); inputKnown.append(nil); continue }
            guard let t = types[i] else { throw GraphError.node(name: node.name, op: node.qualifiedOp, message: "undefined value '\(i)'", location: nil) }
            inputTypes.append(t)
            inputKnown.append(known[i])
        }
        let (checked, outTypes, outKnown) = try Graph.infer(node, inputTypes: inputTypes, inputKnown: inputKnown, location: nil)
        let redefined = Set(replacing.map(\.name))
        for (i, v) in node.outputs.enumerated() {
            if !redefined.contains(v.name) { claim(v.name) }
            types[v.name] = outTypes[i]
            known[v.name] = outKnown[i]
        }
        return checked
    }

    /// Replaces node `index` by `node` (same name), its outputs' types inferred anew.
    public func replace(nodeAt index: Int, with node: Node) throws(GraphError) {
        graph.nodes[index] = try inferred(node, replacing: graph.nodes[index].outputs)
    }

    /// A node with one output, named like the node.
    public func op(_ op: String, domain: String = "", name: String, _ inputs: [String],
                   _ attributes: [String: Attribute] = [:]) throws(GraphError) -> String {
        try node(op, domain: domain, name: name, inputs, attributes)[0]
    }

    public func output(_ name: String) {
        graph.outputs.append(Value(name, types[name] ?? TensorType(.f32, [])))
    }

    /// Sets the graph's outputs.
    public func setOutputs(_ names: [String]) {
        graph.outputs = []
        for n in names { output(n) }
    }

    /// The finished graph, verified as a whole.
    public func build() throws(GraphError) -> Graph { try graph.verified() }
}

// MARK: - Layers

extension GraphBuilder {
    /// 2-D convolution, PyTorch naming: parameters `name.weight` [out, in/groups, k, k] and
    /// optionally `name.bias` [out].
    public func conv2d(_ x: String, name: String, out: Int, kernel: Int, stride: Int = 1, pad: Int = 0, groups: Int = 1,
                       bias: Bool = false, weightInit: Initializer = .kaimingNormal(.fanIn)) throws(GraphError) -> String {
        let inChannels = shape(of: x).count > 1 ? shape(of: x)[1].value ?? 0 : 0
        let w = parameter("\(name).weight", [out, inChannels / groups, kernel, kernel], weightInit)
        var inputs = [x, w]
        if bias { inputs.append(parameter("\(name).bias", [out], .fanInUniform(fanIn: inChannels / groups * kernel * kernel))) }
        var attrs: [String: Attribute] = [
            "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]), "pads": .ints([pad, pad, pad, pad]),
        ]
        if groups != 1 { attrs["group"] = .int(groups) }
        return try op("Conv", name: name, inputs, attrs)
    }

    /// Inference-form BatchNormalization with PyTorch's parameter names and initial values.
    public func batchNorm(_ x: String, name: String, epsilon: Float = 1e-5) throws(GraphError) -> String {
        let c = shape(of: x)[1].value ?? 0
        let inputs = [
            x,
            parameter("\(name).weight", [c], .ones),
            parameter("\(name).bias", [c], .zeros),
            parameter("\(name).running_mean", [c], .zeros, role: .buffer),
            parameter("\(name).running_var", [c], .ones, role: .buffer),
        ]
        return try op("BatchNormalization", name: name, inputs, ["epsilon": .float(epsilon)])
    }

    public func relu(_ x: String, name: String) throws(GraphError) -> String { try op("Relu", name: name, [x]) }

    public func add(_ a: String, _ b: String, name: String) throws(GraphError) -> String { try op("Add", name: name, [a, b]) }

    /// Fully connected layer as ONNX writes `nn.Linear`: Gemm with `transB=1`, weight [out, in].
    public func linear(_ x: String, name: String, out: Int, weightInit: Initializer? = nil) throws(GraphError) -> String {
        let inFeatures = shape(of: x).last?.value ?? 0
        let w = parameter("\(name).weight", [out, inFeatures], weightInit ?? .kaimingUniformDefault)
        let b = parameter("\(name).bias", [out], .fanInUniform(fanIn: inFeatures))
        return try op("Gemm", name: name, [x, w, b], ["transB": .int(1)])
    }
}
