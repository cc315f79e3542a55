// The training step's losses (softmax cross-entropy, focal, LDAM) with their gradients, and
// the SGD update. Schemas: Ops/Ops+Train.swift; reference kernels: Reference/Kernels+Train.swift.

let lossDefinitions: [OpDefinition] = ["SoftmaxCrossEntropy", "FocalLoss", "LDAMLoss"].flatMap { loss in [
    define(loss, domain: "kiln", types: .floats, flops: .perOutput(1), gradient: .none("the loss starts the backward pass"), lowering: .reference),
    define(loss + "Grad", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
] } + [
    define("SGD", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.sgd)),
]
