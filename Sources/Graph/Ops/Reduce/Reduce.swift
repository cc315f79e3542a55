// Reductions: ReduceMean, ReduceL2, ReduceSum, ReduceMax, ReduceMin, ReduceProd,
// ReduceSumSquare, ReduceL1, ReduceLogSumExp, and the training step's kiln.ReduceToShape (a broadcast
// operand's gradient).
// Float reductions over a run of consecutive axes run on kiln_reduce_axis.
// Schemas: Reduce+Schemas.swift; reference kernels: Reduce+Reference.swift.

private let noReduceGradient = GradientRule.none("Kiln has no backward rule for it yet")

let reduceDefinitions: [OpDefinition] = [
    // ReduceMean-13 and ReduceL2-13: axes is an attribute (all axes when absent).
    define(reduction("ReduceMean"), fold(initial: 0, +) { sum, n in sum / n },
           types: .floats, flops: .perInput, gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.reduce)),
    define(reduction("ReduceL2"), fold(initial: 0, { $0 + $1 * $1 }) { sum, _ in sum.squareRoot() },
           types: .floats, flops: .perInput, gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.reduce)),
    // ReduceSum-13, ReduceMax-18, ReduceMin-18, ReduceProd, ReduceSumSquare, ReduceL1,
    // ReduceLogSumExp: axes as an input there, moved to the attribute on import.
    define(reduction("ReduceSum", floatOnly: false), fold(initial: 0, +), types: .numbers, flops: .perInput, gradient: noReduceGradient,
           lowering: .kernel(.reduce)),
    define(reduction("ReduceMax", floatOnly: false, bools: true), reduceMaxReference, types: .all, flops: .perInput, gradient: noReduceGradient,
           lowering: .kernel(.reduce)),
    define(reduction("ReduceMin", floatOnly: false, bools: true), reduceMinReference, types: .all, flops: .perInput, gradient: noReduceGradient,
           lowering: .kernel(.reduce)),
    define(reduction("ReduceProd", floatOnly: false), fold(initial: 1, *), types: .numbers, flops: .perInput, gradient: noReduceGradient,
           lowering: .reference),
    define(reduction("ReduceSumSquare"), fold(initial: 0) { $0 + $1 * $1 }, types: .floats, flops: .perInput, gradient: noReduceGradient,
           lowering: .kernel(.reduce)),
    define(reduction("ReduceL1"), fold(initial: 0) { $0 + Swift.abs($1) }, types: .floats, flops: .perInput, gradient: noReduceGradient,
           lowering: .kernel(.reduce)),
    define(reduction("ReduceLogSumExp"), logSumExpReference, types: .floats, flops: .perInput, gradient: noReduceGradient, lowering: .reference),
    // dy, like → dy summed over the axes where `like` broadcast (numpy rules) to dy's shape
    define(shapedLike("ReduceToShape", inputs: 2...2, like: 1), reduceToShape,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
]
