import Compiler
import Foundation
import Graph
import Runtime

public struct TrainError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One epoch's figures (a line of `metrics.jsonl`; keys in docs/TRAINING.md).
public struct EpochReport: Codable, Sendable {
    /// 1-based.
    public var epoch: Int
    public var epochs: Int
    public var lr: Double
    /// Mean training loss over the epoch's images.
    public var loss: Double
    public var trainAccuracy: Double
    /// Whether the loss used class-balanced weights this epoch.
    public var reweighted: Bool
    public var val: Evaluation?
    /// Training images per second (steps and batch preparation; evaluation excluded).
    public var imagesPerSecond: Double
    public var trainSeconds: Double
    public var evalSeconds: Double
}

/// Where an epoch is, for progress bars.
public struct StepProgress: Sendable {
    public var epoch: Int, epochs: Int
    public var batch: Int, batches: Int
    public var images: Int
    public var meanLoss: Double
    public var seconds: Double
}

/// A training run: the compiled step over a long-tailed dataset with a schedule and a
/// balancing rule, checkpointed to its folder after every epoch.
public final class Trainer {
    public let config: TrainConfig
    public let data: RunData
    public let normalization: Normalization
    public var classCounts: [Int] { data.train.classCounts }
    public let runDirectory: String
    /// The architecture that trains (LDAM: with its cosine head), with values.
    public let model: Graph
    let step: TrainingStep
    var partial: TrainingStep?
    /// Compiled evaluation models by batch size (refreshed with the weights at each use).
    var predictors: [Int: Predictor] = [:]
    var rng: KilnRandom
    public private(set) var epoch: Int
    public private(set) var best: Checkpoint.Best?
    let augmentation: Augmentation
    let imageCount: Int
    /// The data-parallel job (mpirun), or nil: each rank runs its share of every global batch
    /// of `globalBatch` images, BatchNorm and gradients summed across the job (TrainingStep).
    public let cluster: Cluster?
    /// Images per step over the whole job (`--batch`, at most the training set).
    public let globalBatch: Int

    /// A new run of `architecture` (parameters drawn with the configuration's seed).
    public convenience init(config: TrainConfig, architecture: Graph, runDirectory: String, cluster: Cluster? = nil) throws {
        let data = try RunData.load(config)
        let norm = config.mean.map { Normalization(mean: $0, std: config.std!) } ?? Normalization.fit(data.train)
        var g = architecture
        if config.loss == .ldam { g = try Autodiff.cosineHead(try g.verified(), logits: g.outputs.first?.name ?? "") }
        g = try g.materialized(seed: config.seed)
        try self.init(config: config, data: data, normalization: norm, model: g, runDirectory: runDirectory,
                      epoch: 0, rng: KilnRandom(seed: config.seed), best: nil, state: nil, cluster: cluster)
    }

    /// The run saved in `checkpoint`; `threads` overrides the stored thread count (results
    /// are then no longer bit-identical to an uninterrupted run).
    public convenience init(resuming checkpoint: Checkpoint, runDirectory: String, threads: Int? = nil, cluster: Cluster? = nil) throws {
        var config = checkpoint.header.config
        if let threads { config.threads = threads }
        let data = try RunData.load(config)
        guard data.train.classCounts == checkpoint.header.classCounts else {
            throw TrainError("the training data changed since the checkpoint: class counts \(data.train.classCounts), the run trained on \(checkpoint.header.classCounts)")
        }
        let g = try checkpoint.architecture()
        guard let words = checkpoint.rng else { throw TrainError("the checkpoint's generator state is damaged") }
        try self.init(config: config, data: data, normalization: Normalization(mean: checkpoint.header.mean, std: checkpoint.header.std),
                      model: g, runDirectory: runDirectory, epoch: checkpoint.header.epoch, rng: KilnRandom(state: words),
                      best: checkpoint.header.best, state: checkpoint.tensors, cluster: cluster)
    }

    init(config: TrainConfig, data: RunData, normalization: Normalization, model: Graph, runDirectory: String, epoch: Int,
         rng: KilnRandom, best: Checkpoint.Best?, state: [String: TensorData]?, cluster: Cluster? = nil) throws {
        let problems = config.problems()
        guard problems.isEmpty else { throw TrainError(problems.joined(separator: "; ")) }
        self.config = config
        self.data = data
        self.normalization = normalization
        self.runDirectory = runDirectory
        self.model = model
        self.epoch = epoch
        self.rng = rng
        self.best = best
        augmentation = Augmentation(cropPadding: config.cropPadding, flip: config.flip, randAugment: config.randAugment)
        imageCount = data.train.count
        guard let input = model.inputs.first, let sizes = Array(input.type.shape.dropFirst()).staticSizes else {
            throw TrainError("the model's first input must be images [N, C, H, W] with static C, H, W")
        }
        guard sizes == data.train.imageShape else {
            throw TrainError("the model takes images \(sizes), the data holds \(data.train.imageShape)")
        }
        guard let logits = model.outputs.first, logits.type.rank == 2, logits.type.shape[1].value == data.train.classes else {
            throw TrainError("the model's first output must be logits [N, \(data.train.classes)] for the data's \(data.train.classes) classes, got \(model.outputs.first?.type.description ?? "none")")
        }
        guard normalization.mean.count == sizes[0], normalization.std.count == sizes[0] else {
            throw TrainError("normalisation has \(normalization.mean.count) means and \(normalization.std.count) stds for \(sizes[0]) channels")
        }
        let options = config.trainingOptions(classCounts: data.train.classCounts)
        self.cluster = cluster?.isDistributed == true ? cluster : nil
        globalBatch = min(config.batch, data.train.count)
        // A rank whose share is empty runs a one-image placeholder that counts for nothing.
        step = try TrainingStep(model: model, options: options, batch: max(1, self.cluster?.share(of: globalBatch).count ?? globalBatch),
                                threads: config.threads, seed: config.seed)
        step.cluster = self.cluster
        if config.sam != nil && self.cluster != nil {
            throw TrainError("--sam is not available under mpirun yet: its first gradient would be each rank's own, not the job's")
        }
        if config.mixing?.isEnabled == true && self.cluster != nil {
            throw TrainError("--mixup and --cutmix are not available under mpirun yet: they pair images across the whole batch")
        }
        if config.maxNorm != nil && step.classifierWeight == nil {
            throw TrainError("--max-norm caps the class vectors of a Linear (Gemm) head; this model's logits come from another op\(config.loss == .ldam ? " (LDAM's cosine head normalises them already)" : "")")
        }
        if let state {
            let names = Set(step.state().keys)
            try step.load(state.filter { names.contains($0.key) })
        }
    }

    public var epochsLeft: Int { config.epochs - epoch }
    public var batchesPerEpoch: Int { (imageCount + globalBatch - 1) / globalBatch }

    /// Seconds per full-batch step, timed on two steps of a zero batch whose effect on the
    /// state is undone afterwards.
    public func timeStep() throws -> Double {
        let saved = step.state()
        let zeros = [Float](repeating: 0, count: step.batch * data.train.imageSize)
        let labels = [Int](repeating: 0, count: step.batch), weights = [Float](repeating: 1, count: data.train.classes)
        var best = Double.infinity
        for _ in 0..<2 {
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try zeros.withUnsafeBufferPointer { try step.run(images: $0, labels: labels, classWeights: weights, learningRate: 0) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
        }
        try step.load(saved)
        return best
    }

    /// Runs one epoch (the next), evaluates, and returns its report; the caller checkpoints.
    public func trainEpoch(progress: (StepProgress) -> Void = { _ in }) throws -> EpochReport {
        let e = epoch
        let lr = config.learningRate(epoch: e)
        let weights = config.classWeights(epoch: e, counts: classCounts)
        let order = config.rule == .resample
            ? EpochOrder.classBalanced(labels: data.train.labels, classes: data.train.classes, rng: &rng)
            : EpochOrder.shuffled(count: imageCount, rng: &rng)
        let perImage = data.train.imageSize
        var buffer = [Float](repeating: 0, count: step.batch * perImage)
        var lossSum = 0.0, correct = 0, seen = 0
        let start = DispatchTime.now().uptimeNanoseconds
        let batches = batchesPerEpoch
        for b in 0..<batches {
            let indices = Array(order[(b * globalBatch)..<min((b + 1) * globalBatch, order.count)])
            // This rank's images of the batch (all of them in one process).
            let mine = cluster?.share(of: indices.count) ?? 0..<indices.count
            let placeholder = mine.isEmpty
            let local = placeholder ? 1 : mine.count
            let current: TrainingStep
            if local == step.batch {
                current = step
            } else {
                if partial?.batch != local {
                    partial = try TrainingStep(model: model, options: config.trainingOptions(classCounts: classCounts), batch: local,
                                               threads: config.threads, seed: config.seed, sharingStateWith: step)
                    partial!.cluster = cluster
                }
                current = partial!
                current.model.repack()  // the state it shares with the main step moved
            }
            let count = local * perImage
            // The generator's draws for the other ranks' images are skipped, so each image gets
            // the crop and flip it gets in one process.
            func skip(_ images: Int) { for _ in 0..<(images * augmentation.drawsPerImage) { _ = rng.next() } }
            skip(mine.lowerBound)
            var labels: [Int]
            if placeholder {
                buffer.withUnsafeMutableBufferPointer { $0.baseAddress!.update(repeating: 0, count: perImage) }
                labels = [0]
            } else {
                labels = buffer.withUnsafeMutableBufferPointer {
                    data.train.batch(Array(indices[mine]), augmentation: augmentation, normalization: normalization, rng: &rng, into: $0.baseAddress!)
                }
            }
            skip(indices.count - mine.upperBound)
            // This rank's share of the loss's normaliser: Σ w_y over its images against the
            // batch's (Focal's mean: its image count against the batch's).
            var share = 1.0
            if cluster != nil {
                if placeholder {
                    share = 0
                } else if config.loss == .focal {
                    share = Double(mine.count) / Double(indices.count)
                } else {
                    let trainLabels = data.train.labels
                    let w = { (i: Int) in Double(weights[trainLabels[i]]) }
                    share = indices[mine].reduce(0) { $0 + w($1) } / indices.reduce(0) { $0 + w($1) }
                }
            }
            var mix: (labels: [Int], lambda: Float)? = nil
            if let m = config.mixing, m.isEnabled {
                mix = buffer.withUnsafeMutableBufferPointer { m.apply($0.baseAddress!, count: local, imageShape: data.train.imageShape, labels: labels, rng: &rng) }
            }
            let loss = try buffer.withUnsafeBufferPointer {
                if let rho = config.sam {
                    return try current.runSAM(rho: Float(rho), images: UnsafeBufferPointer(rebasing: $0[0..<count]), labels: labels, classWeights: weights,
                                              learningRate: Float(lr), weightDecay: Float(config.weightDecay), lossScale: Float(share), countsImages: !placeholder,
                                              mix: mix)
                }
                return try current.run(images: UnsafeBufferPointer(rebasing: $0[0..<count]), labels: labels, classWeights: weights, learningRate: Float(lr),
                                       lossScale: Float(share), countsImages: !placeholder, mix: mix)
            }
            guard loss.isFinite else {
                let kept = e == 0 ? "no epoch finished, nothing saved" : "the last good checkpoint (epoch \(e)) is kept"
                throw TrainError("the loss became \(loss) at epoch \(e + 1), batch \(b + 1) of \(batches) (learning rate \(lr)); training stopped, \(kept) — try a lower --lr")
            }
            if let limit = config.maxNorm { try current.capClassNorms(limit: Float(limit)) }
            let logits = current.logits
            if !placeholder {
                for i in 0..<local where Evaluation.argmax(logits, row: i, classes: data.train.classes) == labels[i] { correct += 1 }
            }
            if current !== step { step.model.repack() }
            // The batch's mean loss is the ranks' losses weighted by their shares.
            lossSum += Double(loss) * share * Double(indices.count)
            seen += indices.count
            progress(StepProgress(epoch: e + 1, epochs: config.epochs, batch: b + 1, batches: batches, images: seen,
                                  meanLoss: lossSum / Double(seen), seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
        }
        if let cluster {
            var totals = [lossSum, Double(correct)]
            cluster.sum(&totals)
            lossSum = totals[0]
            correct = Int(totals[1])
        }
        let trainSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let evalStart = DispatchTime.now().uptimeNanoseconds
        // Rank 0 evaluates (and reports, checkpoints, exports); the other ranks only train.
        let val = cluster?.isRoot == false ? nil : try data.val.map { try evaluate($0) }
        epoch += 1
        if let v = val, best == nil || v.top1 > best!.top1 {
            best = Checkpoint.Best(epoch: epoch, top1: v.top1, meanClass: v.meanClass)
        }
        return EpochReport(epoch: epoch, epochs: config.epochs, lr: lr, loss: lossSum / Double(max(seen, 1)),
                           trainAccuracy: Double(correct) / Double(max(seen, 1)), reweighted: weights.contains { $0 != 1 }, val: val,
                           imagesPerSecond: Double(seen) / trainSeconds, trainSeconds: trainSeconds,
                           evalSeconds: Double(DispatchTime.now().uptimeNanoseconds - evalStart) / 1e9)
    }

    /// The current weights as the inference model (what export writes, with the run's
    /// classifier adjustments folded in).
    public func inferenceGraph(metadata: [String: String] = [:]) throws -> Graph {
        var values = step.state()
        for p in model.parameters where values[p.name] == nil { if let t = p.initializer.tensor { values[p.name] = t } }
        let g = try InferenceModel.build(model: model, values: values, scale: Float(config.scale), metadata: metadata)
        guard let a = config.adjustment, !a.isEmpty else { return g }
        return try a.apply(to: g, classCounts: classCounts).0
    }

    /// Top-1 predictions and accuracies of the current weights on `set` (no augmentation).
    /// The evaluation model is compiled once per batch size and run and refreshed with the
    /// current weights after that.
    public func evaluate(_ set: ImageDataset) throws -> Evaluation {
        let graph = try inferenceGraph(), batch = min(256, max(set.count, 1))
        let predictor: Predictor
        if let p = predictors[batch] {
            try p.model.refresh(values: graph)
            predictor = p
        } else {
            predictor = try Predictor(graph: graph, threads: config.threads, batch: batch)
            predictors[batch] = predictor
        }
        let predictions = try predictor.predict(set, normalization: normalization)
        return Evaluation(predictions: predictions, labels: set.labels, trainingCounts: classCounts)
    }

    /// The checkpoint of the current state.
    public func checkpoint() throws -> Checkpoint {
        var tensors = step.state()
        var structure = model
        for i in structure.parameters.indices where structure.parameters[i].dtype == .f32 {
            let p = structure.parameters[i]
            if tensors[p.name] == nil, let t = p.initializer.tensor { tensors[p.name] = t }
            structure.parameters[i].initializer = .zeros
        }
        var header = Checkpoint.Header(
            config: config, epoch: epoch, rng: Checkpoint.rngWords(rng.state), classCounts: classCounts, classNames: data.classNames,
            mean: normalization.mean, std: normalization.std, model: TextFormat.print(structure, options: .full), best: best, tensors: [])
        header.ranks = cluster?.size
        return Checkpoint(header: header, tensors: tensors)
    }

    /// Bytes a checkpoint takes (for the free-space check before training).
    public var checkpointBytes: Int {
        step.state().values.reduce(0) { $0 + $1.bytes.count } + 1 << 20
    }
}

/// Batched top-1 prediction with a compiled inference graph.
struct Predictor {
    let model: BatchModel
    let input: UnsafeMutablePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let batch: Int, classes: Int, perImage: Int

    init(graph: Graph, threads: Int, batch: Int) throws {
        model = try CompiledModel.forThroughput(graph, batch: batch, threads: threads)
        guard let c = graph.outputs[0].type.shape.last?.value, let image = Array(graph.inputs[0].type.shape.dropFirst()).staticSizes else {
            throw TrainError("the inference model has no image input or logits output")
        }
        perImage = image.reduce(1, *)
        input = try model.checkedInput(graph.inputs[0].name, perImage: perImage).baseAddress!
        output = try model.checkedOutput(graph.outputs[0].name, perImage: c).baseAddress!
        self.batch = batch
        classes = c
    }

    func predict(_ set: ImageDataset, normalization: Normalization) throws -> [Int] {
        guard set.imageSize == perImage else {
            throw TrainError("the images hold \(set.imageSize) values each, the model takes \(perImage)")
        }
        var predictions: [Int] = []
        predictions.reserveCapacity(set.count)
        var unused = KilnRandom(seed: 0)
        var start = 0
        while start < set.count {
            let indices = Array(start..<min(start + batch, set.count))
            _ = set.batch(indices, augmentation: .none, normalization: normalization, rng: &unused, into: input)
            if indices.count < batch { (input + indices.count * set.imageSize).update(repeating: 0, count: (batch - indices.count) * set.imageSize) }
            try model.execute()
            let logits = UnsafeBufferPointer(start: output, count: batch * classes)
            for i in 0..<indices.count { predictions.append(Evaluation.argmax(logits, row: i, classes: classes)) }
            start += batch
        }
        return predictions
    }
}
