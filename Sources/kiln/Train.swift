import ArgumentParser
import Compiler
import Foundation
import Graph
import Runtime
import Train

extension LossKind: ExpressibleByArgument {}
extension BalanceRule: ExpressibleByArgument {}
extension LongTailProfile: ExpressibleByArgument {}

extension Kiln {
    struct TrainCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Train a classifier with LDAM-DRW (or CE/Focal, with any balancing rule), checkpointing every epoch.",
            discussion: """
                Data: --data takes an MNIST IDX images file (labels found beside it by the standard naming, …-images-idx3-ubyte[.gz] → …-labels-idx1-ubyte[.gz]), CIFAR-10/100 binary files (a .bin file or the folder holding data_batch_1…5.bin / train.bin), or a folder with one subfolder of PNG/JPEG images per class (class names = subfolder names; images decoded once into memory, resized to the first one's size); --val the same (a CIFAR folder gives its test file). --split-first N trains on the first N images of each class of --data and validates on the rest. --lt-profile exp|step --lt-ratio R takes the long-tailed subset of the training images (n_max = the largest class; counts as in Cao et al. 2019), with its own seed (--lt-seed) so every --seed trains on the same split.

                Schedule (the paper's, scaled to --epochs): linear warm-up over --warmup epochs, LR ×0.01 from 80 % and ×1e-4 from 90 % of the epochs, DRW's class-balanced weights (β = 0.9999, normalised to sum to the number of classes) from the first decay.

                Every epoch prints loss, train and validation accuracy (overall, mean per class, many/medium/few-shot: > 100, 20–100, < 20 training images), LR and images/s, appends one JSON object to OUT/metrics.jsonl (keys in docs/TRAINING.md), and writes OUT/checkpoint.kcp atomically. A killed run continues with `kiln train --out OUT --resume` and ends bit-identical to an uninterrupted one (same --threads). The end of the run exports OUT/model.onnx (as `kiln export OUT`).

                Examples:
                  kiln train --model models/resnet8-mnist.kiln \\
                      --data data/mnist5k/mnist5k-images-idx3-ubyte.gz --split-first 400 \\
                      --lt-profile exp --lt-ratio 100 --loss ldam --rule drw --epochs 100 \\
                      --crop-padding 2 --out runs/ldam-drw
                  kiln train --recipe cifar10-lt --data cifar-10-batches-bin --out runs/c10
                  kiln train --out runs/c10 --resume
                """
        )

        enum Recipe: String, ExpressibleByArgument, CaseIterable {
            case cifar10Lt = "cifar10-lt", cifar100Lt = "cifar100-lt", lt
        }

        @Option(help: "cifar10-lt / cifar100-lt: the paper's full CIFAR-LT setting (ResNet-32, LDAM-DRW, 200 epochs, exp ratio 100, crop 4 + flip, CIFAR mean/std). lt: the long-tail recipe for any --model and --data (docs/TRAINING.md): LDAM-DRW with RandAugment 2,5 and logit adjustment τ = 1 folded into the exported model. Other options override a recipe.")
        var recipe: Recipe?
        @Option(help: "The network (.kiln or .onnx); its first output must be logits [N, classes].")
        var model: String?
        @Option(help: "Training images (MNIST IDX images file, CIFAR .bin file or folder, class-per-subfolder image folder).")
        var data: String?
        @Option(help: "Validation images (same formats).")
        var val: String?
        @Option(name: .customLong("split-first"), help: "Per class, train on the first N images of --data and validate on the rest.")
        var splitFirst: Int?
        @Option(help: "Loss: ce, focal, ldam, la (logit-adjusted cross-entropy), bs (balanced softmax) or vs (vector-scaling) (default: ce; the recipes: ldam).")
        var loss: LossKind?
        @Option(help: "Class balancing: none, reweight, resample or drw (default: none; the recipes: drw).")
        var rule: BalanceRule?
        @Option(help: "Epochs (default 200).")
        var epochs: Int?
        @Option(help: "Batch size (default 128; the last partial batch is kept).")
        var batch: Int?
        @Option(help: "Base learning rate (default 0.1).")
        var lr: Double?
        @Option(help: "Weight decay on every parameter (default 2e-4).")
        var wd: Double?
        @Option(help: "SGD momentum (default 0.9).")
        var momentum: Double?
        @Option(help: "Epochs of linear LR warm-up (default 5).")
        var warmup: Int?
        @Option(name: .customLong("drw-epoch"), help: "0-based epoch from which DRW re-weights (default: the first LR decay, 80 % of the epochs).")
        var drwEpoch: Int?
        @Option(help: "β of the class-balanced weights (default 0.9999).")
        var beta: Double?
        @Option(name: .customLong("max-m"), help: "LDAM's largest margin, given to the rarest class (default 0.5).")
        var maxM: Double?
        @Option(help: "LDAM's logit scale s (default 30).")
        var scale: Double?
        @Option(help: "Focal loss γ (default 1).")
        var gamma: Double?
        @Option(help: "τ of --loss la (logits + τ·log prior; default 1) and of vs's additive term (default 1).")
        var tau: Double?
        @Option(name: .customLong("vs-gamma"), help: "VS loss: logit j is scaled by (n_j / n_max)^γ (default 0.2).")
        var vsGamma: Double?
        @Option(name: .customLong("label-smoothing"), help: "Label smoothing ε of the cross-entropy losses (default 0).")
        var labelSmoothing: Double?
        @Option(name: .customLong("max-norm"), help: "MaxNorm: cap each class's weight vector of the Linear head at this L2 norm after every step (weight balancing; off by default).")
        var maxNorm: Double?
        @Option(name: .customLong("lt-profile"), help: "Long-tailed subset profile: exp or step.")
        var ltProfile: LongTailProfile?
        @Option(name: .customLong("lt-ratio"), help: "Long-tailed imbalance ratio n_max/n_min, e.g. 100.")
        var ltRatio: Double?
        @Option(name: .customLong("lt-seed"), help: "Seed of the long-tailed subset (numpy's legacy generator, as the reference code; default 0).")
        var ltSeed: UInt64?
        @Option(name: .customLong("crop-padding"), help: "Random crop of the image zero-padded by P pixels (default 0: no crop).")
        var cropPadding: Int?
        @Flag(inversion: .prefixedNo, help: "Random horizontal flip (default off; the recipes: on).")
        var flip: Bool?
        @Option(name: .customLong("tau-norm"), help: "Fold τ-normalisation (exponent T) of the Linear head into the exported model and its validation.")
        var tauNorm: Double?
        @Option(name: .customLong("logit-adjust"), help: "Fold logit adjustment (logits − τ·log prior) into the exported model and its validation.")
        var logitAdjust: Double?
        @Option(help: "SAM (sharpness-aware minimisation) with radius ρ, e.g. 0.05: two forward–backward passes per step (default off).")
        var sam: Double?
        @Option(help: "Mixup with λ ~ Beta(α, α), e.g. 0.2 (default off; with --cutmix each batch takes one of the two).")
        var mixup: Double?
        @Option(help: "CutMix with λ ~ Beta(α, α), e.g. 1 (default off).")
        var cutmix: Double?
        @Option(name: .customLong("randaugment"), help: "RandAugment N,M: N operations per training image at magnitude M (0–10), e.g. 2,9 (default off).")
        var randAugment: String?
        @Option(help: "Per-channel mean, comma-separated, in [0, 1] units (default: fitted on the training set).")
        var mean: String?
        @Option(help: "Per-channel std, comma-separated (with --mean).")
        var std: String?
        @Option(help: "Seed for weights, shuffling and augmentation (default 0).")
        var seed: UInt64?
        @Option(help: "Threads (default: all cores). Bit-identical resume needs the same count.")
        var threads: Int?
        @Option(help: "The run folder: checkpoint.kcp, metrics.jsonl, model.onnx.")
        var out: String
        @Flag(help: "Continue the run in --out from its last checkpoint (its stored settings apply).")
        var resume = false
        @Flag(help: "Start over in an --out that already holds a run.")
        var force = false

        func configuration() throws -> TrainConfig {
            var c: TrainConfig
            switch recipe {
            case .cifar10Lt?, .cifar100Lt?:
                c = TrainConfig(model: model ?? (recipe == .cifar10Lt ? "builtin:resnet32-cifar10" : "builtin:resnet32-cifar100"), data: data ?? "")
                c.loss = .ldam
                c.rule = .drw
                c.ltProfile = .exp
                c.ltRatio = 100
                c.cropPadding = 4
                c.flip = true
                c.mean = [0.4914, 0.4822, 0.4465]
                c.std = [0.2023, 0.1994, 0.2010]
                c.val = val ?? data
            case .lt?:
                guard let model else { throw CLIError("--recipe lt needs --model FILE") }
                c = TrainConfig(model: model, data: data ?? "")
                c.loss = .ldam
                c.rule = .drw
                c.randAugment = RandAugment(ops: 2, magnitude: 5)
                c.adjustment = ClassifierAdjustment(logitAdjust: 1)
            case nil:
                guard let model else { throw CLIError("give --model FILE (or a --recipe)") }
                c = TrainConfig(model: model, data: data ?? "")
            }
            guard data != nil else { throw CLIError("give --data PATH (training images)") }
            if let v = val { c.val = v }
            if let v = splitFirst { c.splitFirst = v; if recipe != nil && recipe != .lt && val == nil { c.val = nil } }
            if let v = loss { c.loss = v }
            if let v = rule { c.rule = v }
            if let v = epochs { c.epochs = v }
            if let v = batch { c.batch = v }
            if let v = lr { c.lr = v }
            if let v = wd { c.weightDecay = v }
            if let v = momentum { c.momentum = v }
            if let v = warmup { c.warmupEpochs = v }
            if let v = drwEpoch { c.drwEpoch = v }
            if let v = beta { c.beta = v }
            if let v = maxM { c.maxM = v }
            if let v = scale { c.scale = v }
            if let v = gamma { c.gamma = v }
            if let v = tau { c.tau = v }
            if let v = vsGamma { c.vsGamma = v }
            if let v = labelSmoothing { c.labelSmoothing = v }
            if let v = maxNorm { c.maxNorm = v }
            if let v = ltProfile { c.ltProfile = v }
            if let v = ltRatio { c.ltRatio = v }
            if let v = ltSeed { c.ltSeed = v }
            if let v = cropPadding { c.cropPadding = v }
            if let v = flip { c.flip = v }
            if tauNorm != nil || logitAdjust != nil {
                var a = c.adjustment ?? ClassifierAdjustment()
                if let t = tauNorm { a.tauNorm = t }
                if let t = logitAdjust { a.logitAdjust = t }
                c.adjustment = a
            }
            if let v = sam { c.sam = v }
            if mixup != nil || cutmix != nil { c.mixing = Mixing(mixupAlpha: mixup, cutmixAlpha: cutmix) }
            if let v = randAugment {
                guard let r = RandAugment(argument: v) else { throw CLIError("--randaugment takes N,M (operations, magnitude), e.g. 2,9; got '\(v)'") }
                c.randAugment = r
            }
            if let v = mean { c.mean = try parseFloats(v, flag: "--mean") }
            if let v = std { c.std = try parseFloats(v, flag: "--std") }
            if let v = seed { c.seed = v }
            if let v = threads { c.threads = v }
            // Stored absolute, so `--resume` and `kiln export` work from any directory.
            func absolute(_ p: String) -> String { p.hasPrefix("builtin:") ? p : URL(fileURLWithPath: p).standardizedFileURL.path }
            c.model = absolute(c.model)
            c.data = absolute(c.data)
            c.val = c.val.map(absolute)
            let problems = c.problems()
            guard problems.isEmpty else { throw CLIError(problems.joined(separator: "; ")) }
            return c
        }


        func run() throws {
            Interrupts.shared.install { [out] sig in
                "stopped by \(sig == SIGINT ? "SIGINT" : "SIGTERM"); the last checkpoint in \(out) is intact: kiln train --out \(out) --resume continues"
            }
            try reportingErrors {
                // Under mpirun every rank trains its share of each batch; rank 0 alone writes the
                // run folder (checkpoints, metrics, export) and prints.
                let cluster = try Cluster.start()
                let trainer: Trainer
                let fm = FileManager.default
                let checkpointPath = (out as NSString).appendingPathComponent(Checkpoint.fileName)
                if resume {
                    let given = [model, data, val, recipe?.rawValue].compactMap { $0 }
                    if !given.isEmpty { note("--resume uses the run's stored settings; ignoring \(given.joined(separator: ", "))") }
                    let cp = try Checkpoint.read(runDirectory: out)
                    if let t = threads, t != cp.header.config.threads {
                        note("--threads \(t) differs from the run's \(cp.header.config.threads): the result will not be bit-identical to an uninterrupted run")
                    }
                    let before = cp.header.ranks ?? 1
                    if before != cluster.size {
                        note("the checkpoint was written by \(before) process\(before == 1 ? "" : "es"), this job has \(cluster.size): each step is the same computation "
                             + "(BatchNorm statistics and gradients are the whole batch's), so the run continues as it was, up to rounding")
                    }
                    trainer = try Trainer(resuming: cp, runDirectory: out, threads: threads, cluster: cluster)
                    emit("resuming \(out) after epoch \(cp.header.epoch) of \(cp.header.config.epochs)\n")
                } else {
                    let config = try configuration()
                    if fm.fileExists(atPath: checkpointPath) && !force {
                        let done = (try? Checkpoint.read(runDirectory: out)).map { " (epoch \($0.header.epoch) of \($0.header.config.epochs))" } ?? ""
                        throw CLIError("\(out) already holds a run\(done): --resume continues it, --force starts over")
                    }
                    if cluster.isRoot { try prepareRunFolder(out) }
                    let architecture = try loadArchitecture(config.model)
                    trainer = try Trainer(config: config, architecture: architecture, runDirectory: out, cluster: cluster)
                    // A new run: the files of one started over with --force go.
                    for name in [Checkpoint.fileName, MetricsLog.fileName, "model.onnx"] where cluster.isRoot {
                        try? fm.removeItem(atPath: (out as NSString).appendingPathComponent(name))
                    }
                }
                if cluster.isRoot { try checkSpace(out, bytes: 3 * trainer.checkpointBytes) }
                try train(trainer, cluster: cluster)
                cluster.finish()
            }
        }

        func train(_ t: Trainer, cluster: Cluster) throws {
            let c = t.config
            if cluster.isDistributed {
                let base = t.globalBatch / cluster.size, uneven = t.globalBatch % cluster.size != 0
                emit("data-parallel: \(cluster.size) ranks, \(base)\(uneven ? "–\(base + 1)" : "") images of each batch of \(t.globalBatch) per rank, BatchNorm statistics and gradients summed across ranks\n")
            }
            let counts = t.classCounts
            emit("data: \(t.data.train.count) training images of \(t.data.train.imageShape), \(counts.count) classes, per class \(counts)\n")
            if let v = t.data.val { emit("validation: \(v.count) images, per class \(v.classCounts)\n") } else { emit("validation: none\n") }
            let groups = counts.map { Evaluation.shot($0) }
            emit("shots: many \(groups.filter { $0 == .many }.count), medium \(groups.filter { $0 == .medium }.count), few \(groups.filter { $0 == .few }.count) classes\n")
            var augment: [String] = []
            if let r = c.randAugment { augment.append("RandAugment \(r.ops) operations at magnitude \(r.magnitude)") }
            if c.cropPadding > 0 { augment.append("random crops with padding \(c.cropPadding)") }
            if c.flip { augment.append("horizontal flips") }
            if let a = c.mixing?.mixupAlpha { augment.append("mixup α \(a)") }
            if let a = c.mixing?.cutmixAlpha { augment.append("CutMix α \(a)") }
            emit("augmentation: \(augment.isEmpty ? "none" : augment.joined(separator: ", "))\n")
            if let a = c.adjustment, !a.isEmpty {
                let parts = [a.tauNorm.map { "τ-normalisation T = \($0)" }, a.logitAdjust.map { "logit adjustment τ = \($0)" }].compactMap { $0 }
                emit("classifier adjustment folded into validation and the export: \(parts.joined(separator: ", "))\n")
            }
            emit("loss \(c.lossDescription), rule \(c.rule.rawValue)\(c.rule == .drw ? " from epoch \(c.drwStart + 1)" : ""), \(c.epochs) epochs, batch \(c.batch), lr \(c.lr) (warm-up \(c.warmupEpochs), ×0.01 from epoch \(c.decays[0] + 1), ×1e-4 from epoch \(c.decays.count > 1 ? c.decays[1] + 1 : c.epochs + 1)), wd \(c.weightDecay)\(c.sam.map { ", SAM ρ \($0)" } ?? "")\(c.maxNorm.map { ", class vectors capped at norm \($0)" } ?? ""), momentum \(c.momentum), seed \(c.seed), threads \(c.threads)\n")
            func list(_ v: [Float]) -> String { v.map { String(format: "%.4f", $0) }.joined(separator: ", ") }
            emit("normalisation: mean \(list(t.normalization.mean)), std \(list(t.normalization.std))\n")
            if t.epochsLeft > 0 {
                let step = try t.timeStep()
                let estimate = step * Double(t.batchesPerEpoch * t.epochsLeft)
                emit("estimated time: \(duration(estimate)) for \(t.epochsLeft) epochs (\(String(format: "%.0f", Double(c.batch) / step)) images/s per step, evaluation extra)\n")
            }
            let log = cluster.isRoot ? try MetricsLog(runDirectory: out, keepingEpochs: t.epoch) : nil
            let bar = ProgressBar()
            var last = log?.reports().last
            while t.epochsLeft > 0 {
                let r = try t.trainEpoch { p in
                    guard cluster.isRoot else { return }
                    bar.show(String(format: "epoch %d/%d  batch %d/%d  loss %.4f  %.0f img/s", p.epoch, p.epochs, p.batch, p.batches, p.meanLoss,
                                    Double(p.images) / max(p.seconds, 1e-9)), fraction: Double(p.batch) / Double(p.batches))
                }
                bar.clear()
                last = r
                guard let log else { continue }
                emit(epochLine(r) + "\n")
                try log.append(r)
                try t.checkpoint().write(runDirectory: out)
            }
            guard cluster.isRoot else { return }
            if let r = last, let v = r.val {
                emit("\nfinal (epoch \(r.epoch)): " + summaryLine(v) + "\n")
                if let b = t.best { emit(String(format: "best  (epoch %d): top-1 %.1f%%, mean-class %.1f%%\n", b.epoch, 100 * b.top1, 100 * b.meanClass)) }
                emit("per class (final): " + zip(t.data.classNames, v.perClass).map { name, a in
                    "\(name) \(a.map { String(format: "%.1f", 100 * $0) } ?? "–")"
                }.joined(separator: ", ") + "\n")
            }
            let path = (out as NSString).appendingPathComponent("model.onnx")
            emit(try Exporter.export(runDirectory: out, to: path))
        }

        func summaryLine(_ v: Evaluation) -> String {
            var s = String(format: "top-1 %.1f%%, mean-class %.1f%%", 100 * v.top1, 100 * v.meanClass)
            for (name, g) in [("many", v.many), ("medium", v.medium), ("few", v.few)] {
                if let g { s += String(format: ", %@ %.1f%%", name, 100 * g) }
            }
            return s
        }

        func epochLine(_ r: EpochReport) -> String {
            var s = String(format: "epoch %3d/%d  lr %.5f  loss %.4f  train %5.1f%%", r.epoch, r.epochs, r.lr, r.loss, 100 * r.trainAccuracy)
            if let v = r.val {
                s += String(format: "  val %5.1f%%  mean-class %5.1f%%", 100 * v.top1, 100 * v.meanClass)
                for (name, g) in [("many", v.many), ("medium", v.medium), ("few", v.few)] {
                    if let g { s += String(format: "  %@ %5.1f", name, 100 * g) }
                }
            }
            s += String(format: "  %.0f img/s%@", r.imagesPerSecond, r.reweighted ? "  (re-weighted)" : "")
            return s
        }

        func note(_ s: String) { printNote(s) }
    }

    struct ExportCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Export a training run's weights as a standard ONNX model.",
            discussion: """
                Reads RUN_DIR/checkpoint.kcp (the last finished epoch) and writes ONNX opset 17: BatchNormalization in inference form (running statistics), LDAM's cosine head as ReduceL2 → Max(ε) → Div → MatMul (unit weight columns) → Mul(s), so the logits are s·cos θ; metadata_props hold the class names and counts, the preprocessing (kiln.input_size, kiln.layout, kiln.mean, kiln.std, kiln.resize) and the training configuration (kiln.training). `kiln run` and onnxruntime load it.

                --tau-norm T and --logit-adjust τ fold classifier-level long-tail adjustments into the exported model, so that the deployed model is the adjusted one (plain `kiln eval`, `kiln infer`, onnxruntime): τ-normalisation (Kang et al. 2020) divides each class's weight vector by its norm to the power T (the bias is kept; a cosine head's vectors are unit already), and logit adjustment (Menon et al. 2021) subtracts τ·log(prior) from the logits, the prior from the run's training images per class — added to a Linear head's bias, or as one Sub after the head. The metadata key kiln.classifier_adjustment records both.

                Examples:
                  kiln export runs/ldam-drw -o ldam-drw.onnx
                  kiln export runs/ce -o ce-adjusted.onnx --tau-norm 1 --logit-adjust 1
                """
        )

        @Argument(help: "A run folder written by `kiln train`.")
        var runDirectory: String
        @Option(name: .shortAndLong, help: "The .onnx file to write (default RUN_DIR/model.onnx); written atomically.")
        var output: String?
        @Option(name: .customLong("tau-norm"), help: "τ-normalise the classifier: class j's weight vector / ‖w_j‖^T.")
        var tauNorm: Double?
        @Option(name: .customLong("logit-adjust"), help: "Subtract τ·log(class prior) from the logits (post-hoc logit adjustment, folded in).")
        var logitAdjust: Double?

        func run() throws {
            Interrupts.shared.install { sig in "stopped by \(sig == SIGINT ? "SIGINT" : "SIGTERM"); no model written" }
            try reportingErrors {
                let path = output ?? (runDirectory as NSString).appendingPathComponent("model.onnx")
                guard path.lowercased().hasSuffix(".onnx") else { throw CLIError("\(path): the output must be an .onnx file") }
                emit(try Exporter.export(runDirectory: runDirectory, to: path, overriding: ClassifierAdjustment(tauNorm: tauNorm, logitAdjust: logitAdjust)))
            }
        }
    }
}

/// The model of a run's `--model`: a file, or for the recipes a built-in ResNet-32.
func loadArchitecture(_ name: String) throws -> Graph {
    switch name {
    case "builtin:resnet32-cifar10": return try ModelZoo.cifarResNet(blocksPerStage: 5, inputChannels: 3, size: 32, classes: 10, name: "resnet32_cifar10")
    case "builtin:resnet32-cifar100": return try ModelZoo.cifarResNet(blocksPerStage: 5, inputChannels: 3, size: 32, classes: 100, name: "resnet32_cifar100")
    default: return try loadGraph(name)
    }
}

/// Creates the run folder and checks that it takes files.
func prepareRunFolder(_ path: String) throws {
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw CLIError("\(path): cannot create the run folder: \(error.localizedDescription)")
    }
}

/// Fails before training when `path` cannot take `bytes` more: writes (and removes) a probe
/// file of that size, which finds a read-only folder, missing permissions and a full disk.
func checkSpace(_ path: String, bytes: Int) throws {
    let probe = (path as NSString).appendingPathComponent(".kiln-write-check")
    do {
        try AtomicFile.write([UInt8](repeating: 0, count: bytes), to: probe)
    } catch let e as DatasetError {
        throw CLIError("\(path) cannot hold the run's files (\(bytes >> 20) MiB needed for checkpoints and the export): \(e.message)")
    }
    unlink(probe)
}

/// Comma-separated numbers of an option (`count` of them when given).
func parseFloats(_ s: String, flag: String, count: Int? = nil) throws -> [Float] {
    let v = s.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
    guard !v.isEmpty, v.allSatisfy({ $0 != nil }), count == nil || v.count == count else {
        throw CLIError("\(flag) takes \(count.map { "\($0) " } ?? "")comma-separated numbers, got '\(s)'")
    }
    return v.map { $0! }
}

func duration(_ seconds: Double) -> String {
    if seconds < 90 { return String(format: "%.0f s", seconds) }
    if seconds < 5400 { return String(format: "%.0f min", seconds / 60) }
    return String(format: "%.1f h", seconds / 3600)
}

/// A one-line progress bar on a terminal (stderr); nothing when stderr is not a terminal.
final class ProgressBar {
    let enabled = isatty(2) != 0
    var last: UInt64 = 0

    func show(_ text: String, fraction: Double) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - last > 100_000_000 || fraction >= 1 else { return }
        last = now
        let width = 24, filled = Int((Double(width) * min(max(fraction, 0), 1)).rounded())
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        writeStderr("\r\u{1B}[K\(bar) \(text)")
    }

    func clear() {
        guard enabled else { return }
        writeStderr("\r\u{1B}[K")
    }
}
