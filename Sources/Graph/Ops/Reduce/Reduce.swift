// Reductions: ReduceMean, ReduceL2, and the training step's kiln.ReduceToShape (a broadcast
// operand's gradient).
// Schemas: Reduce+Schemas.swift; reference kernels: Reduce+Reference.swift.

let reduceDefinitions: [OpDefinition] = [
    // ReduceMean-13 and ReduceL2-13: axes is an attribute (all axes when absent).
    define(reduction("ReduceMean"), reduction(squares: false) { sum, n in sum / n },
           types: .floats, flops: .perInput, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define(reduction("ReduceL2"), reduction(squares: true) { sum, _ in sum.squareRoot() },
           types: .floats, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    // dy, like → dy summed over the axes where `like` broadcast (numpy rules) to dy's shape
    define(shapedLike("ReduceToShape", inputs: 2...2, like: 1), reduceToShape,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
]
