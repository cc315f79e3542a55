import Graph

/// The loss a training graph ends in (docs/TRAINING.md).
public enum TrainingLoss: Sendable, Equatable {
    /// Softmax cross-entropy, weighted mean over the batch.
    case crossEntropy
    /// Focal loss with exponent γ (Lin et al. 2017), as the LDAM reference code computes it.
    case focal(gamma: Float)
    /// LDAM (Cao et al. 2019) on a cosine head: margins from the class counts, the largest
    /// `maxM`, logits scaled by `scale`.
    case ldam(classCounts: [Int], maxM: Float, scale: Float)
    /// Logit-adjusted cross-entropy (Menon et al. 2021): τ·log(prior) added to the logits;
    /// τ = 1 is the balanced softmax (Ren et al. 2020).
    case logitAdjusted(classCounts: [Int], tau: Float)
    /// The vector-scaling loss (Kini et al. 2021): logit j becomes Δ_j·z_j + τ·log(prior_j),
    /// Δ_j = (n_j / n_max)^γ.
    case vectorScaling(classCounts: [Int], gamma: Float, tau: Float)
}

/// A loss by name, as the CLI and a run's configuration give it; `loss(…)` is the step's.
public enum LossKind: String, Codable, Sendable, CaseIterable {
    /// ce: softmax cross-entropy; focal; ldam; la: logit-adjusted cross-entropy; bs: balanced
    /// softmax (la with τ = 1); vs: vector-scaling.
    case ce, focal, ldam, la, bs, vs

    /// Whether the loss needs the training images per class.
    public var needsClassCounts: Bool { self == .ldam || self == .la || self == .bs || self == .vs }

    /// The loss with its parameters (LDAM: the margins from the training images per class;
    /// the paper's largest margin 0.5 and scale 30 by default; la: τ = `tau`, default 1;
    /// vs: Δ's exponent `vsGamma` (default 0.2) and τ (default 1)).
    public func loss(classCounts: [Int], gamma: Float = 1, maxM: Float = 0.5, scale: Float = 30,
                     tau: Float? = nil, vsGamma: Float? = nil) -> TrainingLoss {
        switch self {
        case .ce: return .crossEntropy
        case .focal: return .focal(gamma: gamma)
        case .ldam: return .ldam(classCounts: classCounts, maxM: maxM, scale: scale)
        case .la: return .logitAdjusted(classCounts: classCounts, tau: tau ?? 1)
        case .bs: return .logitAdjusted(classCounts: classCounts, tau: 1)
        case .vs: return .vectorScaling(classCounts: classCounts, gamma: vsGamma ?? 0.2, tau: tau ?? 1)
        }
    }
}

/// How `Autodiff.trainingGraph` builds one SGD step.
public struct TrainingOptions: Sendable, Equatable {
    public var loss: TrainingLoss
    /// Label smoothing ε of the cross-entropy losses: the target is (1 − ε)·one-hot + ε/C.
    public var labelSmoothing: Float
    public var momentum: Float
    public var weightDecay: Float
    public var nesterov: Bool
    /// Running statistics: running = bnMomentum·running + (1 − bnMomentum)·batch (ONNX's
    /// convention; PyTorch's momentum 0.1 is 0.9 here).
    public var bnMomentum: Float
    /// Also output each trained parameter's gradient (as `Autodiff.gradient(p)`), for
    /// methods that need it beside the update (SAM).
    public var exposeGradients: Bool
    /// Mixup / CutMix: the loss takes second labels and λ (inputs `Autodiff.mixLabels`,
    /// `Autodiff.mix`) and is λ·loss(labels) + (1 − λ)·loss(second labels).
    public var mixing: Bool

    public init(loss: TrainingLoss = .crossEntropy, labelSmoothing: Float = 0, momentum: Float = 0.9, weightDecay: Float = 2e-4,
                nesterov: Bool = false, bnMomentum: Float = 0.9, exposeGradients: Bool = false, mixing: Bool = false) {
        self.exposeGradients = exposeGradients
        self.mixing = mixing
        self.loss = loss
        self.labelSmoothing = labelSmoothing
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.bnMomentum = bnMomentum
    }
}

/// Reverse-mode differentiation on the IR: turns an inference graph (images → logits) into
/// one training step — forward in training mode, loss, backward from per-op rules, and an
/// SGD update per trained parameter — as a plain graph that the passes and the runtime
/// treat like any other.
public enum Autodiff {
    /// Inputs the training graph adds: labels (i64 [N]), class weights (f32 [C]) and the
    /// learning rate (f32 scalar), so the DRW switch and the LR schedule never recompile.
    public static let labels = "labels", classWeights = "class_weights", learningRate = "lr"
    /// Inputs of a mixing step (mixup, CutMix): the second labels (i64 [N]) and λ (f32 scalar).
    public static let mixLabels = "labels_mix", mix = "mix"
    /// The loss gradient's scale (a state parameter; see TrainingStep.run).
    public static let lossScale = "loss.scale"
    /// The scalar loss output.
    public static let loss = "loss"

    /// The name of the output holding parameter (or velocity, or running statistic) `name`'s
    /// value after the step.
    public static func next(_ name: String) -> String { name + ".next" }
    /// The buffer holding a trained parameter's SGD velocity.
    public static func velocity(_ name: String) -> String { name + ".velocity" }
    /// The output holding a trained parameter's gradient (with `exposeGradients`).
    public static func gradient(_ name: String) -> String { name + ".gradient" }

    /// Ops with a backward rule (OpRegistry; the loss ops and SGD are added by the builder itself).
    public static var differentiableOps: Set<String> { Set(OpRegistry.differentiable.filter { $0.domain.isEmpty || $0.name == "NormedLinear" }.map(\.description)) }

    /// The training step of `graph`, whose first output is the logits [N, C].
    ///
    /// Outputs, in order: `loss`, the logits, then per trained parameter `p` the pair
    /// `p.next`, `p.velocity.next`, then per BatchNormalization the next running mean and
    /// variance. For LDAM a Linear (Gemm) head becomes `kiln.NormedLinear` with a fresh
    /// unit-column weight [F, C], as the method prescribes.
    public static func trainingGraph(_ graph: Graph, options: TrainingOptions = TrainingOptions()) throws -> Graph {
        var g = try graph.verified()
        guard let logits = g.outputs.first, logits.type.rank == 2, let classes = logits.type.shape[1].value else {
            throw CompilerError.training("the model's first output must be logits [N, C]")
        }
        if case .ldam = options.loss { g = try cosineHead(g, logits: logits.name) }
        var builder = Builder(graph: g, options: options)
        try builder.forward()
        try builder.lossNode(logits: logits, classes: classes)
        try builder.backward()
        try builder.updates()
        return try builder.ctx.graph.verified()
    }

    /// Replaces a Gemm head producing `logits` with NormedLinear (no bias) and a fresh weight
    /// [F, C] drawn by the `unitColumns` rule; a NormedLinear head is kept as it is.
    public static func cosineHead(_ graph: Graph, logits: String) throws -> Graph {
        var g = graph
        guard let i = g.nodes.firstIndex(where: { $0.outputs.first?.name == logits }) else {
            throw CompilerError.training("the logits '\(logits)' are a graph input, not a head")
        }
        let head = g.nodes[i]
        if head.domain == "kiln" && head.op == "NormedLinear" { return g }
        guard head.domain.isEmpty, head.op == "Gemm", let w = g.parameter(named: head.inputs[1]), w.shape.count == 2 else {
            throw CompilerError.training("LDAM needs a Linear (Gemm) or kiln.NormedLinear head; '\(head.name)' is \(head.qualifiedOp)")
        }
        var transB = 0
        if case .int(let t)? = head.attributes["transB"] { transB = t }
        let (classes, features) = transB != 0 ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
        let name = uniqueName("\(head.name).normed.weight", taken: Set(g.valueTypes.keys))
        g.parameters.append(Parameter(name: name, shape: [features, classes], role: .param, initializer: .unitColumns))
        g.nodes[i] = Node(name: head.name, op: "NormedLinear", domain: "kiln", inputs: [head.inputs[0], name], outputs: head.outputs)
        return eliminateDeadCode(g)
    }

    /// One training step built on a GradientContext: the forward in training mode, the loss,
    /// the backward from each op's gradient rule (OpRegistry), the updates.
    struct Builder {
        var ctx: GradientContext
        let options: TrainingOptions
        var runningStats: [(String, String)] = []  // (buffer, its next-value output)

        init(graph: Graph, options: TrainingOptions) {
            ctx = GradientContext(graph: graph)
            self.options = options
        }

        var g: Graph { ctx.graph }

        /// Forward in training mode: BatchNormalization computes batch statistics and the
        /// next running averages.
        mutating func forward() throws {
            for (i, n) in g.nodes.enumerated() where n.domain.isEmpty && n.op == "BatchNormalization" {
                guard n.inputs.count == 5, n.outputs.count == 1 else {
                    throw CompilerError.training("BatchNormalization '\(n.name)' must have 5 inputs and one output to train")
                }
                var eps: Float = 1e-5
                if case .float(let e)? = n.attributes["epsilon"] { eps = e }
                let mean = ctx.fresh("\(n.name).batch_mean"), invstd = ctx.fresh("\(n.name).batch_invstd")
                let nextMean = Autodiff.next(n.inputs[3]), nextVar = Autodiff.next(n.inputs[4])
                let placeholder = TensorType(.f32, [])  // outputs' types come from the schema
                let node = Node(name: n.name, op: "BatchNormTraining", domain: "kiln", inputs: n.inputs,
                                outputs: [n.outputs[0]] + [mean, invstd, nextMean, nextVar].map { Value($0, placeholder) },
                                attributes: ["epsilon": .float(eps), "momentum": .float(options.bnMomentum)])
                try ctx.builder.replace(nodeAt: i, with: node)
                runningStats += [(n.inputs[3], nextMean), (n.inputs[4], nextVar)]
            }
            for (i, n) in g.nodes.enumerated() where n.domain.isEmpty && n.op == "Dropout" {
                // Training-mode Dropout with a seeded mask; its gradient needs the mask.
                var node = n
                while node.inputs.count < 2 { node.inputs.append("") }
                node.inputs = [node.inputs[0], node.inputs[1], ctx.constant("\(n.name).training", TensorData(dtype: .bool, shape: [], values: [1]))]
                if node.outputs.count < 2 { node.outputs.append(Value(ctx.fresh("\(n.name).mask"), TensorType(.bool, []))) }
                if node.attributes["seed"] == nil { node.attributes["seed"] = .int(Int(stableSeed(n.name))) }
                try ctx.builder.replace(nodeAt: i, with: node)
            }
        }

        mutating func lossNode(logits: Value, classes: Int) throws {
            let n = logits.type.shape[0]
            ctx.builder.input(Autodiff.labels, TensorType(.i64, [n]))
            ctx.builder.input(Autodiff.classWeights, TensorType(.f32, [Dim(classes)]))
            ctx.builder.input(Autodiff.learningRate, TensorType(.f32, []))
            let (op, attributes) = try lossOp()
            var mixing: [String] = []
            if options.mixing {
                ctx.builder.input(Autodiff.mixLabels, TensorType(.i64, [n]))
                ctx.builder.input(Autodiff.mix, TensorType(.f32, []))
                mixing = [Autodiff.mixLabels, Autodiff.mix]
            }
            try ctx.emit(op, [logits.name, Autodiff.labels, Autodiff.classWeights] + mixing, [Autodiff.loss],
                     attributes: attributes, name: "loss")
            // The loss gradient's scale: 1, or in a data-parallel job this rank's share of the
            // global batch's loss normaliser (TrainingStep writes it), so the ranks' gradients
            // sum to the whole batch's. State, not a constant: it changes between steps.
            let seed = ctx.builder.parameter(ctx.fresh(Autodiff.lossScale), [], .data(TensorData(floats: [1], shape: [])), role: .buffer, dtype: .f32)
            let dz = ctx.fresh("\(logits.name).grad")
            try ctx.emit(op + "Grad", [seed, logits.name, Autodiff.labels, Autodiff.classWeights] + mixing, [dz],
                     attributes: attributes, name: "loss.grad")
            try ctx.add(logits.name, dz)
        }

        func lossOp() throws -> (String, [String: Attribute]) {
            let smoothing: [String: Attribute] = options.labelSmoothing == 0 ? [:] : ["label_smoothing": .float(options.labelSmoothing)]
            switch options.loss {
            case .crossEntropy: return ("SoftmaxCrossEntropy", smoothing)
            case .focal(let gamma):
                guard smoothing.isEmpty else { throw CompilerError.training("label smoothing goes with the cross-entropy losses, not focal") }
                return ("FocalLoss", ["gamma": .float(gamma)])
            case .ldam(let counts, let maxM, let scale):
                return ("LDAMLoss", smoothing.merging(["class_counts": .ints(counts), "max_m": .float(maxM), "scale": .float(scale)]) { a, _ in a })
            case .logitAdjusted(let counts, let tau):
                return ("LogitAdjustedLoss", smoothing.merging(["class_counts": .ints(counts), "tau": .float(tau)]) { a, _ in a })
            case .vectorScaling(let counts, let gamma, let tau):
                return ("VSLoss", smoothing.merging(["class_counts": .ints(counts), "gamma": .float(gamma), "tau": .float(tau)]) { a, _ in a })
            }
        }

        /// Values whose gradient is wanted: trained parameters and everything computed from them.
        func needingGradient(_ forward: [Node]) -> Set<String> {
            var need = Set(g.parameters.filter { $0.role == .param && $0.dtype == .f32 }.map(\.name))
            for n in forward where n.inputs.contains(where: need.contains) {
                for o in n.outputs where o.type.dtype.isFloatingPoint { need.insert(o.name) }
            }
            return need
        }

        mutating func backward() throws {
            let forward = Array(g.nodes.dropLast(2))  // without the loss and its gradient
            let need = needingGradient(forward)
            for n in forward.reversed() {
                guard let out = n.outputs.first, let dy = try ctx.gradient(of: out.name) else { continue }
                let wants = n.inputs.map { !$0.isEmpty && need.contains($0) }
                guard wants.contains(true) else { continue }
                try rule(n, dy: dy, wants: wants)
            }
        }

        /// The op's gradient rule from its definition.
        mutating func rule(_ n: Node, dy: String, wants: [Bool]) throws {
            let list = Autodiff.differentiableOps.sorted().joined(separator: ", ")
            guard let definition = OpRegistry.definition(of: n) else { throw CompilerError.training("unknown op \(n.qualifiedOp) (node '\(n.name)')") }
            switch definition.gradient {
            case .rule(let apply):
                do { try apply(&ctx, n, dy, wants) } catch let e as GradientError { throw CompilerError.training("\(e.message); differentiable ops: \(list)") }
            case .rewritten(let other):
                throw CompilerError.training("\(n.qualifiedOp) (node '\(n.name)') should have become \(other) before the backward pass")
            case .none(let why):
                throw CompilerError.training("no backward rule for \(n.qualifiedOp) (node '\(n.name)'): \(why); differentiable ops: \(list)")
            }
        }

        /// One SGD node per trained parameter with a gradient; the outputs of the step.
        mutating func updates() throws {
            var outputs = [Autodiff.loss, g.outputs[0].name]
            let attributes: [String: Attribute] = ["momentum": .float(options.momentum), "weight_decay": .float(options.weightDecay),
                                                   "nesterov": .int(options.nesterov ? 1 : 0)]
            for p in g.parameters where p.role == .param && p.dtype == .f32 {
                guard let grad = try ctx.gradient(of: p.name) else { continue }
                let v = Autodiff.velocity(p.name)
                ctx.builder.parameter(v, p.shape, .zeros, role: .buffer)
                let outs = try ctx.emit("SGD", [p.name, grad, v, Autodiff.learningRate], [Autodiff.next(p.name), Autodiff.next(v)],
                                    attributes: attributes, name: "\(p.name).sgd")
                outputs += outs
            }
            outputs += runningStats.map(\.1)
            if options.exposeGradients {
                for p in g.parameters where p.role == .param && p.dtype == .f32 {
                    guard let grad = try ctx.gradient(of: p.name) else { continue }
                    outputs += try ctx.emit("Identity", domain: "", [grad], [Autodiff.gradient(p.name)], name: "\(p.name).gradient")
                }
            }
            ctx.builder.setOutputs(outputs)
        }
    }
}


/// A stable 31-bit seed from a name (FNV-1a), for Dropout masks.
func stableSeed(_ s: String) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
    return h & 0x7fff_ffff
}
