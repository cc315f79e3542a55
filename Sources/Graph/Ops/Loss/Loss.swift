// The training step's losses (softmax cross-entropy, focal, LDAM, logit-adjusted, VS; label smoothing) with their
// gradients, and the SGD update. Their semantics are in docs/TRAINING.md.
// Schemas: Loss+Schemas.swift; reference kernels: Loss+Reference.swift.

let lossDefinitions: [OpDefinition] = lossAttributes.keys.sorted().flatMap { name in [
    define(lossSchema(name), loss, types: .floats, flops: .perOutput(1), gradient: .none("the loss starts the backward pass"), lowering: .reference),
    define(lossGradSchema(name), lossGrad, types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
] } + [
    define(sgdSchema, sgd, types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.sgd)),
]
