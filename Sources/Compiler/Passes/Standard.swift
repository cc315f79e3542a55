import Graph

extension Pass {
    /// The inference pipeline, in order.
    public static let inferencePipeline: [Pass] = [
        .deadCodeElimination, .removeIdentities, .foldConstants, .foldBatchNorm, .fuseEpilogues, .fuseTraining, .fuseElementwise,
        .selectAlgorithms,
    ]

    public static func named(_ name: String) -> Pass? { inferencePipeline.first { $0.name == name } }
}
