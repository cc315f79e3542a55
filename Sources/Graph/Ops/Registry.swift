// The op registry: everything Kiln knows about an op, in one definition per op, defined in
// the op's family folder (Ops/Elementwise, Ops/Conv, …: the definitions, their schemas and
// their reference kernels side by side) and looked up by one typed key.

/// An op's identity: its domain ("" for ONNX's default domain, "kiln" for Kiln's own) and
/// name. Every lookup — verification, statistics, reference kernels, gradients, lowering —
/// goes through this key.
public struct OpKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let domain: String
    public let name: String

    public init(_ name: String, domain: String = "") {
        self.domain = domain == "ai.onnx" ? "" : domain
        self.name = name
    }

    public init(_ node: Node) { self.init(node.op, domain: node.domain) }

    /// `Name` for ONNX's ops, `domain.Name` for the others (as the text IR prints them).
    public var description: String { domain.isEmpty ? name : "\(domain).\(name)" }

    public static func < (a: OpKey, b: OpKey) -> Bool { (a.domain, a.name) < (b.domain, b.name) }
}

/// The floating-point operations of one node, from its input and output shapes.
public enum FlopRule: Sendable {
    /// Data movement, shape arithmetic, constants: no arithmetic counted.
    case none
    /// `k` per output element (activations 1, BatchNorm 2, softmax 3).
    case perOutput(Int)
    /// One per element of the first input (reductions, global pools).
    case perInput
    /// A product of matrices or a convolution (counted as dense work, "conv+gemm").
    case dense(@Sendable (Node, _ inShapes: [[Int]], _ outCount: Int) -> Int)
    /// Anything else.
    case custom(@Sendable (Node, _ inShapes: [[Int]], _ outCount: Int) -> Int)
}

/// How an op's gradient is formed in a training graph (Compiler's Autodiff).
public enum GradientRule: Sendable {
    /// Contributions to the inputs that want a gradient (`wants[k]`), from the gradient `dy` of
    /// the node's first output.
    case rule(@Sendable (inout GradientContext, Node, _ dy: String, _ wants: [Bool]) throws -> Void)
    /// The training graph first replaces the op by another (BatchNormalization by
    /// kiln.BatchNormTraining), whose rule applies.
    case rewritten(as: OpKey)
    /// No gradient flows through the op; the reason is part of the error a training graph
    /// needing one reports.
    case none(String)
}

/// The compiled kernels Kiln has; Compiler's lowering builds each one's descriptor (and falls
/// back to the reference kernel where shapes do not fit it, e.g. a grouped im2col).
public enum FastKernel: Sendable, CaseIterable {
    case conv, gemm, matMul, linear, pool, globalAveragePool, activation, clip, binary, sum, batchNormInference, layerNorm,
         dataMovement, concat, split, softmax, reduce, elementwiseChain
    // Training.
    case convGradData, convGradWeight, convGradBias, batchNormTraining, batchNormGrad, reluGrad,
         globalAveragePoolGrad, scatter, sgd
}

/// How an op runs in a compiled program.
public enum LoweringRule: Sendable {
    /// Its output shares its first input's storage (Reshape, Flatten, Identity, …).
    case view
    /// A compiled kernel.
    case kernel(FastKernel)
    /// Its reference kernel, on the arena's values (shape arithmetic, rare ops).
    case reference
}

/// Element types an op is defined on (its schema checks them on every node).
public enum ElementTypes: Sendable {
    case floats, numbers, all
}

/// One op: schema and shape rule, element types, the ONNX opsets whose form it accepts (the
/// importer rewrites older forms into it), FLOP count, reference kernel, gradient rule and
/// lowering. Every field is required, so a definition missing a piece does not compile.
public struct OpDefinition: Sendable {
    public let key: OpKey
    public let schema: OpSchema
    public let types: ElementTypes
    public let opsets: ClosedRange<Int>
    public let flops: FlopRule
    public let reference: RefKernel
    public let gradient: GradientRule
    public let lowering: LoweringRule

    public init(_ schema: OpSchema, types: ElementTypes, opsets: ClosedRange<Int>, flops: FlopRule, reference: @escaping RefKernel,
                gradient: GradientRule, lowering: LoweringRule) {
        key = OpKey(schema.name, domain: schema.domain)
        self.schema = schema
        self.types = types
        self.opsets = opsets
        self.flops = flops
        self.reference = reference
        self.gradient = gradient
        self.lowering = lowering
    }
}

/// ONNX opsets the importer reads (it rewrites older forms into the IR's, see ONNXImport).
public let onnxOpsets = 7...28
/// Kiln's own ops have one version.
public let kilnOpsets = 1...1

/// Every op Kiln knows.
public enum OpRegistry {
    static let table: [OpKey: OpDefinition] = {
        var t: [OpKey: OpDefinition] = [:]
        for d in elementwiseDefinitions + mathDefinitions + convDefinitions + gemmDefinitions + poolDefinitions + normalizationDefinitions
                 + movementDefinitions + indexDefinitions + reduceDefinitions + lossDefinitions + quantizeDefinitions {
            // Registration-time check: one definition per key.
            precondition(t[d.key] == nil, "op \(d.key) is defined twice")
            if case .rewritten(let other) = d.gradient { precondition(other != d.key, "op \(d.key) is rewritten as itself") }
            t[d.key] = d
        }
        return t
    }()

    public static func definition(_ key: OpKey) -> OpDefinition? { table[key] }
    public static func definition(of node: Node) -> OpDefinition? { table[OpKey(node)] }

    /// Every definition, sorted by key.
    public static var all: [OpDefinition] { table.values.sorted { $0.key < $1.key } }

    /// Ops a training graph can differentiate through.
    public static var differentiable: [OpKey] {
        all.filter { if case .none = $0.gradient { return false }; return true }.map(\.key)
    }
}
