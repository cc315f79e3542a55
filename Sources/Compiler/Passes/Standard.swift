import Graph

extension Pass {
    /// The inference pipeline, in order (with the environment's CompileOptions).
    public static let inferencePipeline: [Pass] = inferencePipeline(.environment)

    /// The inference pipeline for `options`: the passes it names (all by default), the
    /// Winograd choice it makes.
    public static func inferencePipeline(_ options: CompileOptions) -> [Pass] {
        let all: [Pass] = [
            .narrowFloats, .deadCodeElimination, .removeIdentities, .foldConstants, .fuseQuantization, .foldBatchNorm, .lowerEinsum, .fuseLayerNorm, .fuseGelu, .fuseSwish, .fuseEpilogues, .fuseTraining, .fuseElementwise,
            .selectAlgorithms(options),
        ]
        guard let names = options.passes else { return all }
        return all.filter { names.contains($0.name) }
    }

    public static func named(_ name: String) -> Pass? { inferencePipeline.first { $0.name == name } }
}
