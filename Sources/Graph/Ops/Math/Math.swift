// Elementwise math: Exp, Log, Erf, Neg, Abs, Reciprocal, Floor, Ceil, Round,
// Pow, the activations Elu, Selu, Softplus, Mish, Swish, Gelu and PRelu, comparisons and logic
// (Equal, Less, Greater, LessOrEqual, GreaterOrEqual, Not, And, Or, Xor) and Where.
// The unary activations run on the compiled activation kernel (kiln_activation's vector
// rules); Pow, PRelu, the comparisons, logic and Where on their reference kernels.
// Schemas: Math+Schemas.swift; reference kernels: Math+Reference.swift.

private let noGradient = GradientRule.none("Kiln has no backward rule for it yet")
private let logic = GradientRule.none("its output is boolean")

let mathDefinitions: [OpDefinition] = [
    define(unary("Exp"), expReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(unary("Log"), logReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(unary("Erf"), erfReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(unary("Reciprocal"), reciprocalReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(unary("Floor"), floorReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
    define(unary("Ceil"), ceilReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
    define(unary("Round"), roundReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
    define(unaryNumber("Neg"), negReference, types: .numbers, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(unaryNumber("Abs"), absReference, types: .numbers, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(powSchema, powReference, types: .numbers, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
    define(unary("Elu", attributes: [.float("alpha", 1)]), eluReference,
           types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(seluSchema, seluReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
    define(unary("Softplus"), softplusReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(unary("Mish"), mishReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    // Swish-24, x·sigmoid(α·x) (SiLU at α = 1); fuse-swish also writes it for Sigmoid → Mul.
    define(unary("Swish", attributes: [.float("alpha", 1)]), swishReference,
           types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(geluSchema, geluReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .kernel(.activation)),
    define(modSchema, modReference, types: .numbers, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
    define(preluSchema, preluReference, types: .floats, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
    define(comparison("Equal"), comparisonReference(==, ==), types: .all, flops: .none, gradient: logic, lowering: .reference),
    define(comparison("Less"), comparisonReference(<, <), types: .numbers, flops: .none, gradient: logic, lowering: .reference),
    define(comparison("Greater"), comparisonReference(>, >), types: .numbers, flops: .none, gradient: logic, lowering: .reference),
    define(comparison("LessOrEqual"), comparisonReference(<=, <=), types: .numbers, flops: .none, gradient: logic, lowering: .reference),
    define(comparison("GreaterOrEqual"), comparisonReference(>=, >=), types: .numbers, flops: .none, gradient: logic, lowering: .reference),
    define(notSchema, notReference, types: .all, flops: .none, gradient: logic, lowering: .reference),
    define(logical("And"), logicalReference { $0 && $1 }, types: .all, flops: .none, gradient: logic, lowering: .reference),
    define(logical("Or"), logicalReference { $0 || $1 }, types: .all, flops: .none, gradient: logic, lowering: .reference),
    define(logical("Xor"), logicalReference { $0 != $1 }, types: .all, flops: .none, gradient: logic, lowering: .reference),
    define(whereSchema, whereReference, types: .all, flops: .none, gradient: noGradient, lowering: .reference),
]
