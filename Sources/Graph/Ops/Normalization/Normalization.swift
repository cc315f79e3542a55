// Normalisation: BatchNormalization (inference, and the training step's kiln.BatchNormTraining
// with its gradient), LayerNormalization, InstanceNormalization, GroupNormalization, LRN, Softmax and LogSoftmax.
// Schemas: Normalization+Schemas.swift; reference kernels: Normalization+Reference.swift.

let normalizationDefinitions: [OpDefinition] = [
    define(batchNormalizationSchema, batchNorm,
           types: .floats, flops: .perOutput(2), gradient: .rewritten(as: OpKey("BatchNormTraining", domain: "kiln")),
           lowering: .kernel(.batchNormInference)),
    define(batchNormTrainingSchema, batchNormTraining, types: .floats, flops: .perOutput(1), gradient: .rule { ctx, n, dy, wants in
        let x = n.inputs[0]
        let outs = try ctx.emit("BatchNormGrad", [dy, x, n.inputs[1], n.outputs[1].name, n.outputs[2].name],
                            [ctx.part(x), ctx.part(n.inputs[1]), ctx.part(n.inputs[2])],
                            name: "\(n.name).grad")
        for k in 0..<3 where wants[k] { try ctx.add(n.inputs[k], outs[k]) }
    }, lowering: .kernel(.batchNormTraining)),
    define(batchNormGradSchema, batchNormGrad,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.batchNormGrad)),
    define(lrnSchema, lrn, types: .floats, flops: .custom { n, _, out in sat(out, satAdd(n.intAttribute("size", 1), 3)) },
           gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define(layerNormalizationSchema, layerNormalizationReference, types: .floats, flops: .perOutput(5),
           gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.layerNorm)),
    define(instanceNormalizationSchema, instanceNormalizationReference, types: .floats, flops: .perOutput(5),
           gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.layerNorm)),
    define(groupNormalizationSchema, groupNormalizationReference, types: .floats, flops: .perOutput(5),
           gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.layerNorm)),
    define(softmaxLike("Softmax"), softmax(log: false),
           types: .floats, flops: .perOutput(3), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.softmax)),
    define(softmaxLike("LogSoftmax"), softmax(log: true),
           types: .floats, flops: .perOutput(3), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.softmax)),
]
