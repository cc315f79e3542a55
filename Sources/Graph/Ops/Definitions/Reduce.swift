// Reductions: ReduceMean, ReduceL2, and the training step's kiln.ReduceToShape (a broadcast
// operand's gradient). Schemas: Ops/Ops+Tensor.swift, Ops+Train.swift; reference kernels:
// Reference/Kernels+Tensor.swift, Kernels+Train.swift.

let reduceDefinitions: [OpDefinition] = [
    define("ReduceMean", types: .floats, flops: .perInput, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define("ReduceL2", types: .floats, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define("ReduceToShape", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
]
