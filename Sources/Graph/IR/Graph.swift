/// A named value with its static type: a graph input or output, or a node output.
public struct Value: Sendable, Hashable {
    public var name: String
    public var type: TensorType

    public init(_ name: String, _ type: TensorType) {
        self.name = name
        self.type = type
    }
}

/// One operation. `inputs` names values; an empty string marks an omitted optional input.
public struct Node: Sendable, Equatable {
    public var name: String
    /// `""` is the default ONNX domain; `"kiln"` holds Kiln's own ops.
    public var domain: String
    public var op: String
    public var inputs: [String]
    public var outputs: [Value]
    public var attributes: [String: Attribute]

    public init(name: String, op: String, domain: String = "", inputs: [String], outputs: [Value],
                attributes: [String: Attribute] = [:]) {
        self.name = name
        self.op = op
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    /// `Conv`, or `kiln.LDAMLoss` outside the default domain.
    public var qualifiedOp: String { domain.isEmpty || domain == "ai.onnx" ? op : "\(domain).\(op)" }
}

/// What a parameter is for, which decides whether training updates it.
public enum ParameterRole: String, Sendable, Equatable {
    /// Trained: weights, biases, BatchNorm scale and shift.
    case param
    /// State that is not trained by gradient: BatchNorm running statistics.
    case buffer
    /// A fixed value the graph needs: a Reshape target, Slice bounds, Pad widths.
    case const
}

/// How a parameter gets its values: a seeded rule, the values themselves, or (in a parsed
/// dump) the summary that stood in for values too large to print.
public enum Initializer: Sendable, Equatable {
    case zeros
    case ones
    case constant(Double)
    case uniform(low: Double, high: Double)
    case normal(mean: Double, std: Double)
    /// He et al. 2015: normal with std = sqrt(2 / fan), fan from the weight shape.
    case kaimingNormal(FanMode)
    /// PyTorch's default for Linear and Conv weights: uniform(±1/sqrt(fan_in)).
    case kaimingUniformDefault
    /// PyTorch's default for Linear and Conv biases: uniform(±1/sqrt(fan_in of `weight`)).
    case fanInUniform(fanIn: Int)
    /// uniform(-1, 1), then each column (the weight's second axis) scaled to unit L2 norm:
    /// the NormedLinear head of LDAM.
    case unitColumns
    case data(TensorData)
    case summary(TensorSummary)

    public enum FanMode: String, Sendable, Equatable { case fanIn = "fan_in", fanOut = "fan_out" }

    /// Values are present (not a rule, not a summary).
    public var tensor: TensorData? {
        if case .data(let t) = self { return t }
        return nil
    }
}

/// A graph-owned tensor: a trained weight, a buffer, or a constant (ONNX's initialisers).
public struct Parameter: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var role: ParameterRole
    public var initializer: Initializer

    public init(name: String, dtype: DType = .f32, shape: [Int], role: ParameterRole = .param, initializer: Initializer) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.role = role
        self.initializer = initializer
    }

    public init(name: String, role: ParameterRole = .const, data: TensorData) {
        self.init(name: name, dtype: data.dtype, shape: data.shape, role: role, initializer: .data(data))
    }

    public var type: TensorType { TensorType(dtype, shape.map { Dim($0) }) }
    public var count: Int { shape.reduce(1, *) }
}

/// A static dataflow graph: inputs, parameters, nodes in topological order, outputs.
///
/// The IR follows ONNX opset 17 semantics for default-domain ops; every value carries its
/// dtype and shape, and only the batch dimension may be symbolic.
public struct Graph: Sendable, Equatable {
    public var name: String
    public var inputs: [Value]
    public var parameters: [Parameter]
    public var nodes: [Node]
    public var outputs: [Value]
    /// Free-form key-value pairs (ONNX `metadata_props`): class names, preprocessing, …
    public var metadata: [String: String]

    public init(name: String, inputs: [Value] = [], parameters: [Parameter] = [], nodes: [Node] = [],
                outputs: [Value] = [], metadata: [String: String] = [:]) {
        self.name = name
        self.inputs = inputs
        self.parameters = parameters
        self.nodes = nodes
        self.outputs = outputs
        self.metadata = metadata
    }

    /// The type of every value the graph defines, by name.
    public var valueTypes: [String: TensorType] {
        var types: [String: TensorType] = [:]
        for v in inputs { types[v.name] = v.type }
        for p in parameters { types[p.name] = p.type }
        for n in nodes { for o in n.outputs { types[o.name] = o.type } }
        return types
    }

    public func parameter(named name: String) -> Parameter? { parameters.first { $0.name == name } }

    /// Number of trained elements (role `param`).
    public var trainableParameterCount: Int {
        parameters.filter { $0.role == .param }.reduce(0) { $0 + $1.count }
    }
}
