// Indexing: GatherND, ScatterND, Trilu and CumSum. GatherND with constant indices runs as an
// index map (the compiled gather kernel); the others run their reference kernels, which
// constant folding also uses (the attention masks of windowed transformers are built from
// them at compile time).
// Schemas: Index+Schemas.swift; reference kernels: Index+Reference.swift.

private let noGradient = GradientRule.none("Kiln has no backward rule for it yet")

let indexDefinitions: [OpDefinition] = [
    define(gatherNDSchema, gatherNDReference, types: .all, flops: .none, gradient: noGradient, lowering: .kernel(.dataMovement)),
    define(scatterNDSchema, scatterNDReference, types: .all, flops: .none, gradient: noGradient, lowering: .reference),
    define(triluSchema, triluReference, types: .all, flops: .none, gradient: noGradient, lowering: .reference),
    define(cumSumSchema, cumSumReference, types: .numbers, flops: .perOutput(1), gradient: noGradient, lowering: .reference),
]
