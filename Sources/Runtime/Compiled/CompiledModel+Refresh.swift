import Compiler
import Foundation
import Graph

extension CompiledModel {
    /// New values for the weights: `values` is the graph this model was compiled from, with
    /// other parameter values (the same structure — the trainer's inference graph after an
    /// epoch). The compile's passes run again on it, so BatchNorm folds into the new weights,
    /// and their results go into the parameter buffer, the packed weights and the BatchNorm
    /// tables; nothing is lowered or allocated again.
    public func refresh(values: Graph) throws {
        let optimized = try Pipeline.run(try values.bound(toBatch: program.batch), passes: pipeline)
        var slots: [Program.ParameterSlot] = []
        for (name, t) in parameterTensors.sorted(by: { $0.key < $1.key }) {
            guard let data = optimized.parameter(named: name)?.initializer.tensor, data.dtype == .f32, data.count == t.count else {
                throw RuntimeError.inputMismatch(name: name, expected: "a parameter of \(t.count) f32 values, as compiled",
                                                 got: "a graph of another structure")
            }
            slots.append(Program.ParameterSlot(name: name, byteOffset: t.byteOffset, data: data))
        }
        let source = loadParameters(slots, packedSteps: Set(packedWeights.keys))
        for (i, step) in program.steps.enumerated() { try prepare(step, at: i, source: source, valuesOnly: true) }
    }
}
