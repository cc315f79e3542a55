/// One attribute an op accepts: its kind, and its ONNX default or that it is required.
public struct AttributeSpec: Sendable {
    public let name: String
    public let kind: AttributeKind
    public let defaultValue: Attribute?
    public let required: Bool

    public static func int(_ name: String, _ value: Int) -> AttributeSpec { .init(name: name, kind: .int, defaultValue: .int(value), required: false) }
    public static func float(_ name: String, _ value: Float) -> AttributeSpec { .init(name: name, kind: .float, defaultValue: .float(value), required: false) }
    public static func string(_ name: String, _ value: String) -> AttributeSpec { .init(name: name, kind: .string, defaultValue: .string(value), required: false) }
    /// An optional attribute with no default value (its absence means something).
    public static func optional(_ name: String, _ kind: AttributeKind) -> AttributeSpec { .init(name: name, kind: kind, defaultValue: nil, required: false) }
    public static func required(_ name: String, _ kind: AttributeKind) -> AttributeSpec { .init(name: name, kind: kind, defaultValue: nil, required: true) }
}

/// What the catalogue knows about an op: arity, attributes, and its type and shape inference.
public struct OpSchema: Sendable {
    public let domain: String
    public let name: String
    public let inputs: ClosedRange<Int>
    public let outputs: ClosedRange<Int>
    public let attributes: [AttributeSpec]
    /// Checks the node against its input types and sets every output type.
    let infer: @Sendable (inout InferenceContext) throws -> Void
    /// Inputs whose values decide the output's shape (Resize's roi, scales and sizes): a
    /// graph input read there is compiled in as a constant by `kiln conformance`.
    public internal(set) var compileTimeInputs: Set<Int> = []

    public init(_ name: String, domain: String = "", inputs: ClosedRange<Int>, outputs: ClosedRange<Int> = 1...1,
                attributes: [AttributeSpec] = [], infer: @escaping @Sendable (inout InferenceContext) throws -> Void) {
        self.domain = domain
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.infer = infer
    }

    public func attribute(_ name: String) -> AttributeSpec? { attributes.first { $0.name == name } }
}

/// Up to this many inputs for variadic ops (Sum, Concat).
let variadic = Int(Int32.max)

/// The values a small integer tensor (any rank, row-major) is known to hold at compile time, element by element
/// (a `Shape` of a symbolic input holds `N`). Used to infer the shapes of Reshape, Slice, Pad,
/// ConstantOfShape and the Shape → Gather → Concat chains of exported models.
public typealias KnownInts = [Dim]

/// A node under inference: its inputs' types and known values, and the outputs it produces.
public struct InferenceContext {
    public let node: Node
    public let schema: OpSchema
    /// nil where an optional input is omitted.
    public let inputTypes: [TensorType?]
    let knownValues: [KnownInts?]
    /// Values of small floating-point constants (initialisers and Constant nodes), per input.
    let floatValues: [[Double]?]
    public internal(set) var outputTypes: [TensorType?]
    public internal(set) var outputKnown: [KnownInts?]

    init(node: Node, schema: OpSchema, inputTypes: [TensorType?], knownValues: [KnownInts?], floatValues: [[Double]?] = []) {
        self.node = node
        self.schema = schema
        self.inputTypes = inputTypes
        self.knownValues = knownValues
        self.floatValues = floatValues
        outputTypes = Array(repeating: nil, count: node.outputs.count)
        outputKnown = Array(repeating: nil, count: node.outputs.count)
    }

    public func error(_ message: String) -> GraphError {
        .node(name: node.name, op: node.qualifiedOp, message: message, location: nil)
    }

    // MARK: Inputs

    public var inputCount: Int { node.inputs.count }

    public func hasInput(_ i: Int) -> Bool { i < inputTypes.count && inputTypes[i] != nil }

    /// A required input's type.
    public func input(_ i: Int) throws -> TensorType {
        guard i < inputTypes.count, let t = inputTypes[i] else {
            throw error("input \(i) is required")
        }
        return t
    }

    public func optionalInput(_ i: Int) -> TensorType? { i < inputTypes.count ? inputTypes[i] : nil }

    /// Static sizes of input `i`'s shape, or an error naming what is symbolic.
    public func staticShape(_ i: Int, what: String = "") throws -> [Int] {
        let t = try input(i)
        guard let s = t.shape.staticSizes else {
            throw error("\(what.isEmpty ? "input \(i)" : what) needs a static shape, got \(t.shape.text)")
        }
        return s
    }

    /// The values input `i` is known to hold, or nil.
    public func known(_ i: Int) -> KnownInts? { i < knownValues.count ? knownValues[i] : nil }

    /// The values of input `i` when it is a small floating-point constant (Resize's scales), or nil.
    public func knownFloats(_ i: Int) -> [Double]? { i < floatValues.count ? floatValues[i] : nil }

    /// Input `i`'s values as plain integers, or an error saying they must be constant.
    public func constantInts(_ i: Int, what: String) throws -> [Int] {
        guard let k = known(i) else {
            throw error("\(what) (input \(i), '\(node.inputs[i])') must be a constant for Kiln to infer shapes")
        }
        var out: [Int] = []
        for d in k {
            guard let v = d.value else { throw error("\(what) depends on the symbolic dimension \(d)") }
            out.append(v)
        }
        return out
    }

    // MARK: Attributes (schema defaults applied)

    public func attribute(_ name: String) -> Attribute? {
        node.attributes[name] ?? schema.attribute(name)?.defaultValue
    }

    public func int(_ name: String) -> Int {
        if case .int(let v)? = attribute(name) { return v }
        return 0
    }

    public func float(_ name: String) -> Float {
        if case .float(let v)? = attribute(name) { return v }
        return 0
    }

    public func string(_ name: String) -> String {
        if case .string(let v)? = attribute(name) { return v }
        return ""
    }

    public func ints(_ name: String) -> [Int]? {
        if case .ints(let v)? = attribute(name) { return v }
        return nil
    }

    public func has(_ name: String) -> Bool { node.attributes[name] != nil }

    // MARK: Outputs

    public mutating func setOutput(_ i: Int, _ type: TensorType, known: KnownInts? = nil) {
        guard i < outputTypes.count else { return }
        outputTypes[i] = type
        outputKnown[i] = known
    }

    // MARK: Helpers

    /// Normalises an axis in [-rank, rank) to [0, rank).
    public func axis(_ a: Int, rank: Int, what: String = "axis") throws -> Int {
        guard a >= -rank && a < rank else { throw error("\(what) \(a) is out of range for rank \(rank)") }
        return a < 0 ? a + rank : a
    }

    public func requireFloat(_ t: TensorType, _ what: String) throws {
        guard t.dtype.isFloatingPoint else { throw error("\(what) must be a floating-point tensor, got \(t.dtype)") }
    }

    public func requireSameType(_ a: TensorType, _ b: TensorType, _ what: String) throws {
        guard a.dtype == b.dtype else { throw error("\(what): element types differ (\(a.dtype) and \(b.dtype))") }
    }
}

/// Numpy-style (multidirectional) broadcasting of two shapes, or nil when they do not broadcast.
public func broadcastShapes(_ a: Shape, _ b: Shape) -> Shape? {
    let rank = max(a.count, b.count)
    var out: Shape = []
    for i in 0..<rank {
        let da = i < rank - a.count ? Dim(1) : a[i - (rank - a.count)]
        let db = i < rank - b.count ? Dim(1) : b[i - (rank - b.count)]
        if da == db { out.append(da) }
        else if da.value == 1 { out.append(db) }
        else if db.value == 1 { out.append(da) }
        else if da.isSymbolic && !db.isSymbolic { out.append(db) }
        else if db.isSymbolic && !da.isSymbolic { out.append(da) }
        else { return nil }
    }
    return out
}

/// The schemas of the op registry (OpRegistry holds each op's whole definition).
public enum OpCatalogue {
    public static func schema(domain: String, op: String) -> OpSchema? { OpRegistry.definition(OpKey(op, domain: domain))?.schema }

    /// Every op's schema, sorted by key.
    public static var all: [OpSchema] { OpRegistry.all.map(\.schema) }
}
