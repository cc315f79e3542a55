import CKernels
import Compiler
import Foundation

// A training step of a data-parallel job (mpirun): every rank runs the same program on its
// share of the global batch; BatchNorm uses the job's statistics and the SGD steps the job's
// gradients, so K ranks compute the step one process computes on the whole batch. The loss
// gradient is scaled per rank (TrainingStep's loss scale) so that the ranks' gradients sum to
// the whole batch's.
extension CompiledModel {
    /// Training-mode BatchNorm with the job's mean and variance: Σ x and the count reduced,
    /// then Σ (x − mean)², as the one-process kernel computes them in two passes.
    func distributedBatchNorm(_ step: Program.Step, channels: Int, inner: Int, eps: Float, momentum: Float, relu: Bool) {
        guard let cluster else { return }
        let xt = step.inputs[0].tensor!, images = xt.shape[0]
        let x = Shared(pointer: pointer(xt))
        let ins = (1...4).map { pointer(step.inputs[$0].tensor!) }
        let outs = step.outputs.map { pointer($0) }
        func sums(center: [Float]?) -> [Double] {
            var s = [Double](repeating: 0, count: channels + 1)
            if countsImages {
                let centers = center ?? []
                s.withUnsafeMutableBufferPointer { b in
                    let out = Shared(pointer: b.baseAddress!)
                    centers.withUnsafeBufferPointer { c in
                        let cp = center == nil ? nil : Shared(pointer: UnsafeMutablePointer(mutating: c.baseAddress!))
                        parallelChunks(channels, workers: threads, pool: pool) { _, r in
                            kiln_batchnorm_partial_sums(x.pointer, Int32(images), Int32(channels), Int32(inner), cp?.pointer, Int32(r.lowerBound),
                                                        Int32(r.upperBound), out.pointer)
                        }
                    }
                }
                s[channels] = Double(images * inner)
            }
            cluster.sum(&s)
            return s
        }
        let first = sums(center: nil), count = first[channels]
        let mean = (0..<channels).map { Float(first[$0] / max(count, 1)) }
        let squares = sums(center: mean)
        let invstd = (0..<channels).map { Float(1.0 / sqrt(squares[$0] / max(count, 1) + Double(eps))) }
        // Outputs: y, batch mean, 1/σ, next running mean and variance (unbiased), as the kernel.
        for c in 0..<channels {
            outs[1][c] = mean[c]
            outs[2][c] = invstd[c]
            let variance = squares[c] / max(count, 1)
            let unbiased = count > 1 ? variance * count / (count - 1) : variance
            outs[3][c] = momentum * ins[2][c] + (1 - momentum) * mean[c]
            outs[4][c] = Float(Double(momentum) * Double(ins[3][c]) + Double(1 - momentum) * unbiased)
        }
        let scale = Shared(pointer: ins[0]), bias = Shared(pointer: ins[1]), y = Shared(pointer: outs[0])
        mean.withUnsafeBufferPointer { m in
            invstd.withUnsafeBufferPointer { v in
                let mp = Shared(pointer: UnsafeMutablePointer(mutating: m.baseAddress!)), vp = Shared(pointer: UnsafeMutablePointer(mutating: v.baseAddress!))
                parallelChunks(channels, workers: threads, pool: pool) { _, r in
                    kiln_batchnorm_apply(x.pointer, Int32(images), Int32(channels), Int32(inner), scale.pointer, bias.pointer, mp.pointer, vp.pointer,
                                         relu ? 1 : 0, Int32(r.lowerBound), Int32(r.upperBound), y.pointer)
                }
            }
        }
    }

    /// BatchNorm's backward with the job's Σ dy and Σ dy·x̂ over the job's count; the scale
    /// and shift gradients stay this rank's sums (the gradient reduction adds them).
    func distributedBatchNormGrad(_ step: Program.Step, channels: Int, inner: Int) {
        guard let cluster else { return }
        let ins = (0...4).map { Shared(pointer: pointer(step.inputs[$0].tensor!)) }
        let mask = step.inputs.count > 5 ? step.inputs[5].tensor.map { Shared(pointer: pointer($0)) } : nil
        let images = step.inputs[1].tensor!.shape[0]
        let outs = step.outputs.map { pointer($0) }
        var local = [Double](repeating: 0, count: 2 * channels + 1)
        local.withUnsafeMutableBufferPointer { b in
            let out = Shared(pointer: b.baseAddress!)
            parallelChunks(channels, workers: threads, pool: pool) { _, r in
                kiln_batchnorm_grad_partial_sums(ins[0].pointer, ins[1].pointer, Int32(images), Int32(channels), Int32(inner), ins[3].pointer,
                                                 mask?.pointer, Int32(r.lowerBound), Int32(r.upperBound), out.pointer)
            }
        }
        local[2 * channels] = countsImages ? Double(images * inner) : 0
        var job = local
        cluster.sum(&job)
        let invstd = ins[4].pointer
        let sumDy = (0..<channels).map { Float(job[2 * $0]) }, sumDyXhat = (0..<channels).map { Float(job[2 * $0 + 1] * Double(invstd[$0])) }
        for c in 0..<channels {
            outs[1][c] = Float(local[2 * c + 1] * Double(invstd[c]))
            outs[2][c] = Float(local[2 * c])
        }
        let m = Float(job[2 * channels]), dx = Shared(pointer: outs[0])
        // A placeholder image is not part of the batch: nothing flows back through it (the
        // job's sums would otherwise give it a gradient).
        guard countsImages else { dx.pointer.update(repeating: 0, count: step.outputs[0].count); return }
        sumDy.withUnsafeBufferPointer { a in
            sumDyXhat.withUnsafeBufferPointer { b in
                let ap = Shared(pointer: UnsafeMutablePointer(mutating: a.baseAddress!)), bp = Shared(pointer: UnsafeMutablePointer(mutating: b.baseAddress!))
                parallelChunks(channels, workers: threads, pool: pool) { _, r in
                    kiln_batchnorm_grad_apply(ins[0].pointer, ins[1].pointer, Int32(images), Int32(channels), Int32(inner), ins[2].pointer, ins[3].pointer,
                                              ins[4].pointer, mask?.pointer, m, ap.pointer, bp.pointer, Int32(r.lowerBound), Int32(r.upperBound), dx.pointer)
                }
            }
        }
    }

    /// The gradient buckets of a distributed training program (nil for other programs).
    func makeGradientBuckets(_ cluster: Cluster) -> GradientBuckets? {
        let updates = program.steps.indices.filter { if case .sgd = program.steps[$0].kernel { return true }; return false }
        guard let first = updates.first else { return nil }
        // Each gradient with the last step before the updates that writes any of its bytes
        // (an output overlapping it: a view, a slab of a larger tensor).
        let gradients = updates.compactMap { program.steps[$0].inputs[1].tensor }.map { g -> (Program.Tensor, Int) in
            let bytes = g.byteOffset..<(g.byteOffset + g.byteCount)
            let writer = (0..<first).last { i in
                program.steps[i].outputs.contains { $0.inParameters == g.inParameters && bytes.overlaps($0.byteOffset..<($0.byteOffset + $0.byteCount)) }
            }
            return (g, writer ?? -1)
        }.sorted { $0.1 < $1.1 }
        var buckets: [GradientBuckets.Bucket] = [], current = GradientBuckets.Bucket(gradients: [], offset: 0, count: 0, readyAfter: -1)
        for (g, writer) in gradients {
            current.gradients.append(g)
            current.count += g.count
            current.readyAfter = max(current.readyAfter, writer)
            if current.count * 4 >= GradientBuckets.bucketBytes {
                buckets.append(current)
                current = GradientBuckets.Bucket(gradients: [], offset: current.offset + current.count, count: 0, readyAfter: -1)
            }
        }
        if current.count > 0 { buckets.append(current) }
        return GradientBuckets(cluster: cluster, buckets: buckets, firstUpdate: first)
    }
}

/// A data-parallel step's gradients in buckets of about `bucketBytes`, in the order the
/// backward writes them (DDP's buckets): each bucket is copied to a staging buffer and its sum
/// across ranks started (MPI_Iallreduce) as soon as its last gradient is written, and helped
/// along after every later step, so the reduction runs while the backward goes on; before the
/// first SGD update every bucket is waited for and copied back.
final class GradientBuckets {
    struct Bucket {
        var gradients: [Program.Tensor]
        /// Its place in the staging buffer, in floats.
        var offset: Int
        var count: Int
        /// The step after which all its gradients are written.
        var readyAfter: Int
    }
    /// 1 MiB, or KILN_BUCKET_BYTES (at least 4).
    static let bucketBytes = max(4, ProcessInfo.processInfo.environment["KILN_BUCKET_BYTES"].flatMap { Int($0) } ?? 1 << 20)
    let cluster: Cluster
    let buckets: [Bucket]
    let firstUpdate: Int
    let staging: UnsafeMutableBufferPointer<Float>
    var pending: [(Int, Cluster.Reduction)] = []

    init(cluster: Cluster, buckets: [Bucket], firstUpdate: Int) {
        self.cluster = cluster
        self.buckets = buckets
        self.firstUpdate = firstUpdate
        staging = .allocate(capacity: max(1, buckets.reduce(0) { $0 + $1.count }))
    }

    deinit { staging.deallocate() }

    func start(_ k: Int, _ model: CompiledModel) {
        let b = buckets[k]
        var at = b.offset
        for g in b.gradients { (staging.baseAddress! + at).update(from: model.pointer(g), count: g.count); at += g.count }
        pending.append((k, cluster.startSum(UnsafeMutableBufferPointer(rebasing: staging[b.offset..<(b.offset + b.count)]))))
    }

    /// After step `i`: start the buckets it completed, and let the started ones progress.
    func after(step i: Int, _ model: CompiledModel) {
        for k in buckets.indices where buckets[k].readyAfter == i { start(k, model) }
        for (_, r) in pending { r.test() }
    }

    /// Before the first update: every bucket summed and back in its gradients.
    func finish(_ model: CompiledModel) {
        for k in buckets.indices where buckets[k].readyAfter < 0 { start(k, model) }
        for (k, r) in pending {
            r.wait()
            var at = buckets[k].offset
            for g in buckets[k].gradients { model.pointer(g).update(from: staging.baseAddress! + at, count: g.count); at += g.count }
        }
        pending.removeAll()
    }
}
