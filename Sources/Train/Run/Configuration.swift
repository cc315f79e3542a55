import Compiler
import Foundation

/// How classes are balanced (../shared/LDAM-DRW.md): `none` — all weights 1; `reweight` —
/// class-balanced weights from the start; `resample` — class-balanced sampling with
/// replacement; `drw` — weights 1 until `drwEpoch`, class-balanced after.
public enum BalanceRule: String, Codable, Sendable, CaseIterable {
    case none, reweight, resample, drw
}

/// Everything that decides a run; stored in every checkpoint and in the exported model's
/// metadata, so `--resume` needs only the run folder.
public struct TrainConfig: Codable, Sendable, Equatable {
    public var model: String
    public var data: String
    /// A separate validation set; when nil and `splitFirst` is set, the rest of `data`.
    public var val: String?
    /// Per class, train on the first `splitFirst` images of `data` and validate on the rest.
    public var splitFirst: Int?
    /// The loss (the CE and Focal baselines keep the model's Linear head; LDAM swaps it for a
    /// cosine head).
    public var loss: LossKind = .ce
    public var rule: BalanceRule = .none
    public var epochs: Int = 200
    public var batch: Int = 128
    public var lr: Double = 0.1
    public var weightDecay: Double = 2e-4
    public var momentum: Double = 0.9
    public var nesterov: Bool = false
    /// Epochs of linear LR warm-up.
    public var warmupEpochs: Int = 5
    /// 0-based epochs from which the LR is ×0.01 and ×1e-4 (default 80 % and 90 % of `epochs`).
    public var decayEpochs: [Int]?
    /// 0-based epoch from which DRW uses class-balanced weights (default: the first decay).
    public var drwEpoch: Int?
    public var beta: Double = 0.9999
    public var maxM: Double = 0.5
    public var scale: Double = 30
    public var gamma: Double = 1
    /// The logit adjustment's τ (la: default 1; vs: its additive term's τ, default 1).
    public var tau: Double?
    /// VS's Δ exponent γ (default 0.2).
    public var vsGamma: Double?
    /// Label smoothing ε of the cross-entropy losses (default 0).
    public var labelSmoothing: Double?
    /// MaxNorm: after every step, each class's weight vector of the Linear head is capped at
    /// this L2 norm (weight balancing, Alshammari et al. 2022); nil: no cap.
    public var maxNorm: Double?
    public var seed: UInt64 = 0
    /// The long-tailed subset's own seed, so runs with different `seed`s share one split.
    public var ltSeed: UInt64 = 0
    public var ltProfile: LongTailProfile?
    public var ltRatio: Double?
    public var cropPadding: Int = 0
    public var flip: Bool = false
    /// Classifier adjustments folded into the run's exported model (and its validation):
    /// τ-normalisation and logit adjustment; nil: none.
    public var adjustment: ClassifierAdjustment?
    /// SAM's radius ρ (sharpness-aware minimisation: two forward–backward passes per step); nil: plain SGD.
    public var sam: Double?
    /// Mixup / CutMix (their α); nil: none.
    public var mixing: Mixing?
    /// RandAugment on the training images (operations per image, magnitude 0–10); nil: none.
    public var randAugment: RandAugment?
    /// Given normalisation; nil: fitted on the (long-tailed) training set.
    public var mean: [Float]?
    public var std: [Float]?
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init(model: String, data: String) {
        self.model = model
        self.data = data
    }

    public var decays: [Int] { decayEpochs ?? [epochs * 8 / 10, epochs * 9 / 10] }
    public var drwStart: Int { drwEpoch ?? decays.first ?? epochs }

    /// The learning rate of 0-based `epoch`: e = epoch + 1; e ≤ warm-up → lr·e/warm-up; past
    /// the first decay ×0.01, past the second ×1e-4 (the reference code's schedule).
    public func learningRate(epoch: Int) -> Double {
        let e = epoch + 1
        if e <= warmupEpochs { return lr * Double(e) / Double(warmupEpochs) }
        var rate = lr
        for (d, factor) in zip(decays, [0.01, 1e-4]) where epoch >= d { rate = lr * factor }
        return rate
    }

    /// The per-class loss weights of 0-based `epoch` for training counts `counts`.
    public func classWeights(epoch: Int, counts: [Int]) -> [Float] {
        let balanced: Bool
        switch rule {
        case .none, .resample: balanced = false
        case .reweight: balanced = true
        case .drw: balanced = epoch >= drwStart
        }
        return balanced ? LongTail.classBalancedWeights(counts: counts, beta: beta).map(Float.init)
                        : [Float](repeating: 1, count: counts.count)
    }

    /// The training step's options.
    public func trainingOptions(classCounts: [Int]) -> TrainingOptions {
        let l = loss.loss(classCounts: classCounts, gamma: Float(gamma), maxM: Float(maxM), scale: Float(scale),
                          tau: tau.map(Float.init), vsGamma: vsGamma.map(Float.init))
        return TrainingOptions(loss: l, labelSmoothing: Float(labelSmoothing ?? 0), momentum: Float(momentum), weightDecay: Float(weightDecay), nesterov: nesterov,
                               exposeGradients: sam != nil, mixing: mixing?.isEnabled ?? false)
    }

    /// The loss and its settings, as the run's first lines print them.
    public var lossDescription: String {
        var s = loss.rawValue
        switch loss {
        case .focal: s += " (γ \(gamma))"
        case .ldam: s += " (largest margin \(maxM), scale \(scale))"
        case .la: s += " (τ \(tau ?? 1))"
        case .vs: s += " (γ \(vsGamma ?? 0.2), τ \(tau ?? 1))"
        case .ce, .bs: break
        }
        if let e = labelSmoothing, e > 0 { s += ", label smoothing \(e)" }
        return s
    }

    /// Problems with the settings, each a sentence; empty when the configuration can run.
    public func problems() -> [String] {
        var p: [String] = []
        if epochs < 1 { p.append("--epochs must be at least 1") }
        if batch < 1 { p.append("--batch must be at least 1") }
        if !(lr > 0) { p.append("--lr must be positive") }
        if weightDecay < 0 { p.append("--wd must not be negative") }
        if !(momentum >= 0 && momentum < 1) { p.append("--momentum must be in [0, 1)") }
        if !(beta >= 0 && beta < 1) { p.append("--beta must be in [0, 1)") }
        if !(maxM > 0) { p.append("--max-m must be positive") }
        if !(scale > 0) { p.append("--scale must be positive") }
        if let t = tau, !t.isFinite { p.append("--tau must be a finite number") }
        if tau != nil && loss != .la && loss != .vs { p.append("--tau goes with --loss la or vs") }
        if let g = vsGamma, !(g >= 0 && g.isFinite) { p.append("--vs-gamma must not be negative") }
        if vsGamma != nil && loss != .vs { p.append("--vs-gamma goes with --loss vs") }
        if let r = randAugment { p += r.problems }
        if let m = mixing { p += m.problems }
        if let r = sam, !(r > 0 && r.isFinite) { p.append("--sam must be a positive radius") }
        if sam != nil && nesterov { p.append("--sam goes with plain momentum, not Nesterov") }
        if let t = adjustment?.tauNorm, !(t >= 0 && t.isFinite) { p.append("--tau-norm must be a finite number ≥ 0") }
        if let t = adjustment?.logitAdjust, !t.isFinite { p.append("--logit-adjust must be a finite number") }
        if let m = maxNorm, !(m > 0 && m.isFinite) { p.append("--max-norm must be a positive number") }
        if maxNorm != nil && loss == .ldam { p.append("--max-norm caps a Linear head's class vectors; LDAM's cosine head normalises them already") }
        if let e = labelSmoothing, !(e >= 0 && e < 1) { p.append("--label-smoothing must be in [0, 1)") }
        if (labelSmoothing ?? 0) > 0 && loss == .focal { p.append("--label-smoothing goes with the cross-entropy losses, not focal") }
        if warmupEpochs < 0 { p.append("--warmup must not be negative") }
        if cropPadding < 0 { p.append("--crop-padding must not be negative") }
        if threads < 1 { p.append("--threads must be at least 1") }
        if (ltProfile == nil) != (ltRatio == nil) { p.append("--lt-profile and --lt-ratio go together") }
        if let r = ltRatio, !(r >= 1) { p.append("--lt-ratio must be at least 1") }
        if (mean == nil) != (std == nil) { p.append("--mean and --std go together") }
        if let s = std, s.contains(where: { !($0 > 0) }) { p.append("--std values must be positive") }
        if let s = splitFirst, s < 1 { p.append("--split-first must be at least 1") }
        if val != nil && splitFirst != nil { p.append("give --val or --split-first, not both") }
        return p
    }
}
