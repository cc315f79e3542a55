import Compiler
import Foundation
import Graph

/// One compiled SGD step of a model at a fixed batch size: the training graph of
/// `Autodiff.trainingGraph` (forward in training mode, loss, backward, update) compiled like
/// any other graph. The trainer feeds a batch, the class weights and the learning rate, runs
/// the step, reads the loss and logits, and reads or writes the state (parameters, SGD
/// velocities, BatchNorm running statistics) for checkpoints and export.
public final class TrainingStep: @unchecked Sendable {
    public let model: CompiledModel
    /// The training graph (with values for every parameter it added).
    public let graph: Graph
    public let batch: Int
    public let classes: Int
    /// The inference graph's first input and its per-image shape.
    public let inputName: String
    public let imageShape: [Int]
    /// The logits' name (the inference graph's first output).
    public let logitsName: String
    /// State the step updates: (name, its place in the parameter buffer, the output holding
    /// its next value).
    let updates: [(name: String, param: UnsafeMutablePointer<Float>, next: UnsafeMutablePointer<Float>, count: Int)]
    let labels: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>, rate: UnsafeMutablePointer<Float>
    let images: UnsafeMutablePointer<Float>
    /// A mixing step's second labels and λ (nil without `TrainingOptions.mixing`).
    let mixLabels: UnsafeMutablePointer<Float>?, mixWeight: UnsafeMutablePointer<Float>?
    /// The loss gradient's scale in the parameter buffer.
    let lossScale: UnsafeMutablePointer<Float>

    /// Compiles the step. `model` is an inference graph with values (materialised or loaded);
    /// parameters the step adds (velocities, LDAM's cosine-head weight) are drawn with `seed`.
    /// `sharingStateWith`: a step of the same model and options at another batch size whose
    /// state (parameter buffer) this one uses — the epoch's partial last batch — so no state is
    /// copied between them; call `model.repack()` on a step after the other one ran.
    public init(model: Graph, options: TrainingOptions, batch: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                seed: UInt64 = 0, sharingStateWith other: TrainingStep? = nil) throws {
        guard batch >= 1 else { throw RuntimeError.kernel(node: "", op: "train", message: "batch must be at least 1") }
        // Bound here: the training graph's other inputs (labels, weights, rate) hide the
        // image batch from compile's own check.
        let model = try model.bindingBatch(batch)
        graph = try Autodiff.trainingGraph(model, options: options).materialized(seed: seed)
        self.batch = batch
        let compiled = try CompiledModel.compile(graph, batch: batch, threads: threads, sharingParametersWith: other?.model)
        self.model = compiled
        guard let x = model.inputs.first, let sizes = Array(x.type.shape.dropFirst()).staticSizes else {
            throw RuntimeError.kernel(node: "", op: "train", message: "the model's first input must be [N, …] with static image dimensions")
        }
        inputName = x.name
        imageShape = sizes
        logitsName = model.outputs[0].name
        classes = graph.outputs[1].type.shape[1].value ?? 0
        // `run` writes these counts; the program's inputs must hold exactly them.
        func input(_ name: String, _ count: Int) throws -> UnsafeMutablePointer<Float> {
            guard let b = compiled.inputBuffer(name) else { throw RuntimeError.missingInput(name) }
            guard b.count == count else { throw RuntimeError.inputMismatch(name: name, expected: "\(count) values", got: "a program input of \(b.count)") }
            return b.baseAddress!
        }
        images = try input(inputName, batch * sizes.reduce(1, *))
        labels = try input(Autodiff.labels, batch)
        weights = try input(Autodiff.classWeights, classes)
        rate = try input(Autodiff.learningRate, 1)
        mixLabels = options.mixing ? try input(Autodiff.mixLabels, batch) : nil
        mixWeight = options.mixing ? try input(Autodiff.mix, 1) : nil
        guard let scaleName = graph.nodes.first(where: { $0.name == "loss.grad" })?.inputs.first,
              let scale = compiled.parameterPointer(scaleName) else {
            throw RuntimeError.kernel(node: "loss.grad", op: "train", message: "the loss gradient's scale is not in the parameter buffer")
        }
        lossScale = scale
        var updates: [(String, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int)] = []
        for p in graph.parameters where p.role != .const && p.dtype == .f32 {
            guard let next = compiled.outputBuffer(Autodiff.next(p.name)), next.count == p.count else { continue }
            guard let param = compiled.parameterPointer(p.name) else {
                throw RuntimeError.kernel(node: p.name, op: "train", message: "the step's state '\(p.name)' is not in the parameter buffer")
            }
            updates.append((p.name, param, next.baseAddress!, p.count))
        }
        self.updates = updates
    }

    /// The data-parallel job this step is part of (BatchNorm statistics and gradients summed
    /// across its ranks); nil for one process.
    public var cluster: Cluster? {
        get { model.cluster }
        set { model.cluster = newValue }
    }

    /// Runs one step on `images` (batch × image floats, NCHW), `labels` (class indices),
    /// class weights and learning rate, then makes the updated state current. Returns the loss.
    /// In a data-parallel job, `lossScale` is this rank's share of the loss's normaliser (so the
    /// ranks' gradients add up to the global batch's) and `countsImages` false marks a
    /// placeholder batch that contributes nothing (with lossScale 0).
    /// `mix`: a mixed batch's second labels and λ (the loss is λ·loss(labels) + (1 − λ)·loss(mix.labels));
    /// nil: λ = 1.
    public func run(images: UnsafeBufferPointer<Float>, labels: [Int], classWeights: [Float], learningRate: Float,
                    lossScale: Float = 1, countsImages: Bool = true, mix: (labels: [Int], lambda: Float)? = nil) throws -> Float {
        let perImage = imageShape.reduce(1, *)
        guard images.count == batch * perImage, labels.count == batch, classWeights.count == classes else {
            throw RuntimeError.inputMismatch(name: "batch", expected: "\(batch) images of \(imageShape), \(batch) labels, \(classes) class weights",
                                             got: "\(images.count) floats, \(labels.count) labels, \(classWeights.count) weights")
        }
        for (k, l) in labels.enumerated() {
            guard l >= 0 && l < classes else { throw RuntimeError.inputMismatch(name: Autodiff.labels, expected: "0..<\(classes)", got: "\(l) at \(k)") }
            self.labels[k] = Float(l)
        }
        if let mixLabels, let mixWeight {
            let second = mix?.labels ?? labels
            guard second.count == batch, second.allSatisfy({ $0 >= 0 && $0 < classes }) else {
                throw RuntimeError.inputMismatch(name: Autodiff.mixLabels, expected: "\(batch) labels in 0..<\(classes)", got: "\(second.count) labels")
            }
            for (k, l) in second.enumerated() { mixLabels[k] = Float(l) }
            mixWeight.pointee = mix?.lambda ?? 1
        } else if mix != nil {
            throw RuntimeError.kernel(node: "loss", op: "train", message: "a mixed batch needs a step compiled with mixing")
        }
        self.images.update(from: images.baseAddress!, count: images.count)
        weights.update(from: classWeights, count: classes)
        rate.pointee = learningRate
        self.lossScale.pointee = lossScale
        model.countsImages = countsImages
        try model.execute()
        // SGD and BatchNorm write most state in place (see Lowering), and SGD repacks the
        // weights it updates as it runs; the rest is copied back, then packed again.
        var copied = false
        for u in updates where u.param != u.next {
            u.param.update(from: u.next, count: u.count)
            copied = true
        }
        if copied { model.repack() }
        return model.outputBuffer(Autodiff.loss)![0]
    }

    /// One SAM step (sharpness-aware minimisation, Foret et al. 2021) at radius `rho`: the
    /// gradient g at w (a step at learning rate 0 whose velocity and running-statistics
    /// changes are undone), w + ε with ε = ρ·g/‖g‖ (the norm over every trained parameter),
    /// the step's own update with the gradient at w + ε, then ε taken back out: the
    /// parameters and velocities end as SGD from w with that gradient (weight decay on w, as
    /// PyTorch's SAM with SGD has it), and the running statistics are those of the pass at w + ε.
    /// Needs the step compiled with `exposeGradients`, and plain momentum (the correction is
    /// that of SGD without Nesterov).
    public func runSAM(rho: Float, images: UnsafeBufferPointer<Float>, labels: [Int], classWeights: [Float], learningRate: Float,
                       weightDecay: Float, lossScale: Float = 1, countsImages: Bool = true, mix: (labels: [Int], lambda: Float)? = nil) throws -> Float {
        let trained = graph.parameters.filter { $0.role == .param && $0.dtype == .f32 }.map(\.name)
        let gradients = trained.compactMap { name in model.outputBuffer(Autodiff.gradient(name)).map { (name, $0) } }
        guard !gradients.isEmpty else {
            throw RuntimeError.kernel(node: "", op: "train", message: "SAM needs a step compiled with its gradients exposed")
        }
        let isTrained = Set(trained)
        let byName = Dictionary(updates.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // 1. The gradient at w; what the step changed besides it is put back.
        let saved = updates.filter { !isTrained.contains($0.name) }.map { ($0.param, Array(UnsafeBufferPointer(start: $0.param, count: $0.count))) }
        _ = try run(images: images, labels: labels, classWeights: classWeights, learningRate: 0, lossScale: lossScale, countsImages: countsImages, mix: mix)
        for (pointer, values) in saved { pointer.update(from: values, count: values.count) }
        var squares = 0.0
        for (_, g) in gradients { for v in g { squares += Double(v) * Double(v) } }
        let norm = squares.squareRoot()
        guard norm > 0, norm.isFinite else {
            // No direction to climb (or a non-finite gradient, which the caller's loss check reports).
            return try run(images: images, labels: labels, classWeights: classWeights, learningRate: learningRate, lossScale: lossScale, countsImages: countsImages, mix: mix)
        }
        // 2. w + ε.
        let scale = Float(Double(rho) / norm)
        var epsilon: [String: [Float]] = [:]
        for (name, g) in gradients {
            guard let u = byName[name] else { continue }
            let e = g.map { $0 * scale }
            for k in 0..<u.count { u.param[k] += e[k] }
            epsilon[name] = e
        }
        model.repack()
        // 3. The update with the gradient at w + ε, then 4. ε out: v' − wd·ε and w' − ε·(1 − lr·wd)
        // turn SGD from w + ε into SGD from w.
        let loss = try run(images: images, labels: labels, classWeights: classWeights, learningRate: learningRate, lossScale: lossScale, countsImages: countsImages, mix: mix)
        for (name, e) in epsilon {
            guard let u = byName[name], let v = byName[Autodiff.velocity(name)] else { continue }
            for k in 0..<u.count {
                v.param[k] -= weightDecay * e[k]
                u.param[k] -= e[k] * (1 - learningRate * weightDecay)
            }
        }
        model.repack()
        return loss
    }

    /// The classifier's weight: the parameter of the Gemm that writes the logits, and whether
    /// it is [C, F] (transB) or [F, C]; nil when the head is something else.
    public var classifierWeight: (name: String, classMajor: Bool)? {
        guard let head = graph.nodes.first(where: { $0.outputs.first?.name == logitsName }), head.domain.isEmpty, head.op == "Gemm",
              head.inputs.count > 1, let w = graph.parameter(named: head.inputs[1]), w.role == .param, w.shape.count == 2 else { return nil }
        var transB = 0
        if case .int(let t)? = head.attributes["transB"] { transB = t }
        return (w.name, transB != 0)
    }

    /// MaxNorm (weight balancing, Alshammari et al. 2022): each class's weight vector of the
    /// Linear head longer than `limit` is scaled to length `limit`.
    public func capClassNorms(limit: Float) throws {
        guard let (name, classMajor) = classifierWeight, let u = updates.first(where: { $0.name == name }),
              let shape = graph.parameter(named: name)?.shape else {
            throw RuntimeError.kernel(node: logitsName, op: "train", message: "MaxNorm needs a Linear (Gemm) head with a trained weight")
        }
        let (classes, features) = classMajor ? (shape[0], shape[1]) : (shape[1], shape[0])
        let w = u.param
        func at(_ j: Int, _ k: Int) -> Int { classMajor ? j * features + k : k * classes + j }
        var changed = false
        for j in 0..<classes {
            var s: Float = 0
            for k in 0..<features { s += w[at(j, k)] * w[at(j, k)] }
            let norm = s.squareRoot()
            guard norm > limit else { continue }
            let factor = limit / norm
            for k in 0..<features { w[at(j, k)] *= factor }
            changed = true
        }
        if changed { model.repack(parameter: name) }
    }

    /// The logits of the last step (batch × classes), computed before its update.
    public var logits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(rebasing: model.outputBuffer(logitsName)![..<(batch * classes)])
    }

    /// The state the step updates, by name: trained parameters, `p.velocity`, BatchNorm
    /// running statistics.
    public func state() -> [String: TensorData] {
        var out: [String: TensorData] = [:]
        for u in updates {
            let shape = graph.parameter(named: u.name)?.shape ?? [u.count]
            out[u.name] = TensorData(floats: Array(UnsafeBufferPointer(start: u.param, count: u.count)), shape: shape)
        }
        return out
    }

    /// Replaces state values (a checkpoint); names it does not hold, or wrong shapes, are errors.
    public func load(_ values: [String: TensorData]) throws {
        for (name, t) in values {
            guard let u = updates.first(where: { $0.name == name }) else {
                throw RuntimeError.inputMismatch(name: name, expected: "a trained parameter, velocity or running statistic", got: "an unknown name")
            }
            guard t.dtype == .f32, t.count == u.count else {
                throw RuntimeError.inputMismatch(name: name, expected: "f32 with \(u.count) values", got: t.type.description)
            }
            t.bytes.withUnsafeBytes { u.param.update(from: $0.bindMemory(to: Float.self).baseAddress!, count: u.count) }
        }
        model.repack()
    }
}
