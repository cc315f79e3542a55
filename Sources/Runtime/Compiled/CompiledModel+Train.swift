import CBLAS
import CKernels
import Compiler
import Foundation
import Graph

// The fast kernels of the training step (docs/TRAINING.md): convolution gradients through
// OpenBLAS products and col2im, training-mode BatchNorm and its backward, ReLU's backward,
// the adjoint of the index maps, and the SGD update, spread over the pool.
extension CompiledModel {
    /// Runs `step` if its kernel is a training kernel; false otherwise.
    func runTraining(_ step: Program.Step, index: Int, imageParallel: Bool) throws -> Bool {
        switch step.kernel {
        case .convGradData(let c) where c.algorithm == .winograd:
            // dx = the Winograd convolution of dy by the flipped kernel (packed each step).
            winogradConv(c, x: Shared(pointer: pointer(step.inputs[0].tensor!)), bias: nil, residual: nil,
                         y: Shared(pointer: pointer(step.outputs[0])), index: index, images: step.outputs[0].shape[0])
        case .convGradData(let c): convGradData(c, step, parallel: imageParallel)
        case .convGradWeight(let c): convGradWeight(c, step, parallel: imageParallel)
        case .channelSum(let channels, let inner):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.outputs[0]))
            let images = step.inputs[0].tensor!.shape[0]
            parallelChunks(channels, workers: threads, pool: pool) { _, r in
                kiln_channel_sums(x.pointer, Int32(images), Int32(channels), Int32(inner), Int32(r.lowerBound), Int32(r.upperBound), y.pointer)
            }
        case .batchNormTraining(let channels, let inner, let eps, let momentum, let relu) where cluster?.isDistributed == true:
            distributedBatchNorm(step, channels: channels, inner: inner, eps: eps, momentum: momentum, relu: relu)
        case .batchNormGrad(let channels, let inner) where cluster?.isDistributed == true:
            distributedBatchNormGrad(step, channels: channels, inner: inner)
        case .batchNormTraining(let channels, let inner, let eps, let momentum, let relu):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!)), images = step.inputs[0].tensor!.shape[0]
            let ins = (1...4).map { Shared(pointer: pointer(step.inputs[$0].tensor!)) }
            let outs = step.outputs.map { Shared(pointer: pointer($0)) }
            parallelChunks(channels, workers: threads, pool: pool) { _, r in
                kiln_batchnorm_train(x.pointer, Int32(images), Int32(channels), Int32(inner), ins[0].pointer, ins[1].pointer, ins[2].pointer,
                                     ins[3].pointer, eps, momentum, relu ? 1 : 0, Int32(r.lowerBound), Int32(r.upperBound),
                                     outs[0].pointer, outs[1].pointer, outs[2].pointer, outs[3].pointer, outs[4].pointer)
            }
        case .batchNormGrad(let channels, let inner):
            let ins = (0...4).map { Shared(pointer: pointer(step.inputs[$0].tensor!)) }
            let mask = step.inputs.count > 5 ? step.inputs[5].tensor.map { Shared(pointer: pointer($0)) } : nil
            let images = step.inputs[1].tensor!.shape[0]
            let outs = step.outputs.map { Shared(pointer: pointer($0)) }
            parallelChunks(channels, workers: threads, pool: pool) { _, r in
                kiln_batchnorm_grad(ins[0].pointer, ins[1].pointer, Int32(images), Int32(channels), Int32(inner), ins[2].pointer,
                                    ins[3].pointer, ins[4].pointer, mask?.pointer, Int32(r.lowerBound), Int32(r.upperBound),
                                    outs[0].pointer, outs[1].pointer, outs[2].pointer)
            }
        case .reluGrad:
            let dy = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.inputs[1].tensor!))
            let dy2 = step.inputs.count > 2 ? step.inputs[2].tensor.map { Shared(pointer: pointer($0)) } : nil
            let dx = Shared(pointer: pointer(step.outputs[0])), n = step.outputs[0].count
            parallelRanges(n, block: 4096, workers: threads, pool: pool) { lo, hi in
                if let dy2 {
                    kiln_relu_grad_sum(dy.pointer + lo, dy2.pointer + lo, y.pointer + lo, hi - lo, dx.pointer + lo)
                } else {
                    kiln_relu_grad(dy.pointer + lo, y.pointer + lo, hi - lo, dx.pointer + lo)
                }
            }
        case .globalAveragePoolGrad(let planes, let size):
            let dy = pointer(step.inputs[0].tensor!), dx = pointer(step.outputs[0])
            let scale = 1 / Float(size)
            for p in 0..<planes { (dx + p * size).update(repeating: dy[p] * scale, count: size) }
        case .scatter:
            let dy = Shared(pointer: pointer(step.inputs[0].tensor!)), dx = pointer(step.outputs[0])
            dx.update(repeating: 0, count: step.outputs[0].count)
            let dxs = Shared(pointer: dx)
            scatterMaps[index]!.withUnsafeBufferPointer { m in
                let ms = Shared(pointer: UnsafeMutablePointer(mutating: m.baseAddress!)), n = m.count
                // The forward maps are injective (each input element read at most once), so
                // chunks of dy write disjoint elements of dx.
                parallelRanges(n, block: 4096, workers: threads, pool: pool) { lo, hi in
                    kiln_scatter_add_map(dy.pointer + lo, ms.pointer + lo, hi - lo, dxs.pointer)
                }
            }
        case .sgd(let momentum, let wd, let nesterov):
            let ins = (0...2).map { Shared(pointer: pointer(step.inputs[$0].tensor!)) }
            let lr = pointer(step.inputs[3].tensor!).pointee
            let outs = step.outputs.map { Shared(pointer: pointer($0)) }, n = step.outputs[0].count
            parallelRanges(n, block: 16384, workers: n >= 1 << 15 ? threads : 1, pool: pool) { lo, hi in
                kiln_sgd(ins[0].pointer + lo, ins[1].pointer + lo, ins[2].pointer + lo, hi - lo, lr, momentum, wd, nesterov ? 1 : 0,
                         outs[0].pointer + lo, outs[1].pointer + lo)
            }
        default:
            return false
        }
        return true
    }

    func im2colRows(_ c: Program.Conv, _ x: UnsafeMutablePointer<Float>, _ rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        kiln_im2col_rows(x, c.geometry(), Int32(rows.lowerBound), Int32(rows.upperBound), col)
    }

    func col2im(_ c: Program.Conv, _ col: UnsafeMutablePointer<Float>, _ channels: Range<Int>, into x: UnsafeMutablePointer<Float>) {
        kiln_col2im_rows(col, c.geometry(), Int32(channels.lowerBound), Int32(channels.upperBound), x)
    }

    /// dx_n = col2im(Wᵀ · dy_n): inputs dy, W, x (shape only).
    func convGradData(_ c: Program.Conv, _ step: Program.Step, parallel: Bool) {
        let dy = Shared(pointer: pointer(step.inputs[0].tensor!)), w = Shared(pointer: pointer(step.inputs[1].tensor!))
        let dx = Shared(pointer: pointer(step.outputs[0]))
        let images = step.outputs[0].shape[0]
        let k = c.channels * c.kernelH * c.kernelW, p = c.outHeight * c.outWidth, m = c.outChannels
        let inImage = c.channels * c.height * c.width, outImage = m * p
        let scratch = self.scratch.map { Shared(pointer: $0) }
        if parallel {
            parallelChunks(images, workers: threads, pool: pool) { worker, range in
                let col = scratch[worker].pointer
                for n in range {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(k), Int32(p), Int32(m), 1, w.pointer, Int32(k),
                                dy.pointer + n * outImage, Int32(p), 0, col, Int32(p))
                    self.col2im(c, col, 0..<c.channels, into: dx.pointer + n * inImage)
                }
            }
            return
        }
        let col = scratch[0]
        for n in 0..<images {
            parallelChunks(k, workers: threads, pool: pool) { _, r in
                guard !r.isEmpty else { return }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r.count), Int32(p), Int32(m), 1, w.pointer + r.lowerBound, Int32(k),
                            dy.pointer + n * outImage, Int32(p), 0, col.pointer + r.lowerBound * p, Int32(p))
            }
            parallelChunks(c.channels, workers: threads, pool: pool) { _, r in self.col2im(c, col.pointer, r, into: dx.pointer + n * inImage) }
        }
    }

    /// dW = Σ_n dy_n · im2col(x_n)ᵀ: inputs x, dy, W (shape only).
    func convGradWeight(_ c: Program.Conv, _ step: Program.Step, parallel: Bool) {
        let x = Shared(pointer: pointer(step.inputs[0].tensor!)), dy = Shared(pointer: pointer(step.inputs[1].tensor!))
        let dw = Shared(pointer: pointer(step.outputs[0]))
        let images = step.inputs[0].tensor!.shape[0]
        let k = c.channels * c.kernelH * c.kernelW, p = c.outHeight * c.outWidth, m = c.outChannels
        let inImage = c.channels * c.height * c.width, outImage = m * p
        let scratch = self.scratch.map { Shared(pointer: $0) }
        if c.algorithm == .direct {
            convGradWeightShift(c, x: x, dy: dy, dw: dw, images: images, parallel: parallel)
            return
        }
        if c.algorithm == .winograd {
            // Each worker sums its images' tile products into its own dU, turns that into
            // its own dW, and the accumulators add up.
            let geometry = c.geometry()
            let workers = min(threads, images)
            parallelChunks(images, workers: workers, pool: pool) { worker, range in
                let acc = scratch[worker].pointer, dU = acc + c.scratch.second, work = acc + c.scratch.third
                dU.update(repeating: 0, count: 16 * c.channels * m)
                acc.update(repeating: 0, count: m * k)
                if !range.isEmpty {
                    kiln_winograd_wgrad_accumulate(geometry, x.pointer + range.lowerBound * inImage, dy.pointer + range.lowerBound * outImage,
                                                   Int32(range.count), dU, work)
                }
                kiln_winograd_wgrad_finish(dU, Int32(m), Int32(c.channels), acc)
            }
            sumAccumulators(workers: workers, count: m * k, into: dw)
            return
        }
        if parallel {
            // Each worker sums its images into its own accumulator, a group of images' patches
            // and dy side by side at a time; then the accumulators add up.
            let workers = min(threads, images)
            let group = c.scratch.group
            parallelChunks(images, workers: workers, pool: pool) { worker, range in
                let acc = scratch[worker].pointer, col = acc + c.scratch.second, dyRows = acc + c.scratch.third
                acc.update(repeating: 0, count: m * k)
                for g0 in stride(from: range.lowerBound, to: range.upperBound, by: group) {
                    let g = min(group, range.upperBound - g0), ld = g * p
                    for j in 0..<g {
                        let n = g0 + j
                        kiln_im2col_rows_ld(x.pointer + n * inImage, c.geometry(), 0, Int32(c.channels * c.kernelH), Int32(ld), col + j * p)
                        for mi in 0..<m { (dyRows + mi * ld + j * p).update(from: dy.pointer + n * outImage + mi * p, count: p) }
                    }
                    kiln_weight_grad(dyRows, col, Int32(m), Int32(k), Int32(ld), 0, Int32(m), acc)
                }
            }
            sumAccumulators(workers: workers, count: m * k, into: dw)
            return
        }
        let col = scratch[0]
        dw.pointer.update(repeating: 0, count: m * k)
        for n in 0..<images {
            parallelChunks(c.channels * c.kernelH, workers: threads, pool: pool) { _, rows in self.im2colRows(c, x.pointer + n * inImage, rows, into: col.pointer) }
            parallelChunks(m, workers: threads, pool: pool) { _, r in
                kiln_weight_grad(dy.pointer + n * outImage, col.pointer, Int32(m), Int32(k), Int32(p), Int32(r.lowerBound), Int32(r.upperBound), dw.pointer)
            }
        }
    }

    /// dw = the sum of the first `count` floats of the first `workers` threads' scratch.
    func sumAccumulators(workers: Int, count total: Int, into dw: Shared<Float>) {
        let scratch = self.scratch.map { Shared(pointer: $0) }
        parallelChunks((total + 4095) / 4096, workers: threads, pool: pool) { _, r in
            let lo = r.lowerBound * 4096, hi = min(total, r.upperBound * 4096)
            guard hi > lo else { return }
            (dw.pointer + lo).update(from: scratch[0].pointer + lo, count: hi - lo)
            for wk in 1..<max(workers, 1) {
                let src = scratch[wk].pointer
                for j in lo..<hi { dw.pointer[j] += src[j] }
            }
        }
    }

    /// The stride-1 weight gradient from padded images and dy on the same grid (no patches).
    func convGradWeightShift(_ c: Program.Conv, x: Shared<Float>, dy: Shared<Float>, dw: Shared<Float>, images: Int, parallel: Bool) {
        let m = c.outChannels, k = c.channels * c.kernelH * c.kernelW
        let wp = c.width + c.padLeft + c.padRight, q = c.outHeight * wp, geometry = c.geometry()
        let plane = Int(kiln_conv_shift_plane(geometry))
        let inImage = c.channels * c.height * c.width, outImage = m * c.outHeight * c.outWidth
        let scratch = self.scratch.map { Shared(pointer: $0) }
        let group = c.scratch.group
        func prepare(_ n: Int, _ j: Int, xp: UnsafeMutablePointer<Float>, dyp: UnsafeMutablePointer<Float>) {
            kiln_conv_shift_pad(x.pointer + n * inImage, geometry, Int32(plane), xp + j * c.channels * plane)
            kiln_pad_rows(dy.pointer + n * outImage, Int32(m), Int32(c.outHeight), Int32(c.outWidth), Int32(wp), dyp + j * m * q)
        }
        func accumulate(_ g: Int, xp: UnsafeMutablePointer<Float>, dyp: UnsafeMutablePointer<Float>, _ r: Range<Int>, into acc: UnsafeMutablePointer<Float>) {
            kiln_weight_grad_shift(dyp, xp, Int32(g), geometry, Int32(plane), Int32(r.lowerBound), Int32(r.upperBound), acc)
        }
        if parallel {
            let workers = min(threads, images)
            parallelChunks(images, workers: workers, pool: pool) { worker, range in
                let acc = scratch[worker].pointer, xp = acc + c.scratch.second, dyp = acc + c.scratch.third
                acc.update(repeating: 0, count: m * k)
                for g0 in stride(from: range.lowerBound, to: range.upperBound, by: group) {
                    let g = min(group, range.upperBound - g0)
                    for j in 0..<g { prepare(g0 + j, j, xp: xp, dyp: dyp) }
                    accumulate(g, xp: xp, dyp: dyp, 0..<m, into: acc)
                }
            }
            sumAccumulators(workers: workers, count: m * k, into: dw)
            return
        }
        let xp = scratch[0].pointer + c.scratch.second, dyp = scratch[0].pointer + c.scratch.third
        let xs = Shared(pointer: xp), dys = Shared(pointer: dyp)
        dw.pointer.update(repeating: 0, count: m * k)
        for n in 0..<images {
            prepare(n, 0, xp: xp, dyp: dyp)
            parallelChunks(m, workers: threads, pool: pool) { _, r in accumulate(1, xp: xs.pointer, dyp: dys.pointer, r, into: dw.pointer) }
        }
    }

    /// The forward op's index map over the whole batch, for SliceGrad / PadGrad.
    func scatterMap(_ node: Node, _ step: Program.Step) throws -> [Int32] {
        let forwardOp = node.op == "SliceGrad" ? "Slice" : "Pad"
        guard let kernel = OpRegistry.definition(OpKey(forwardOp))?.reference, let x = step.inputs[1].tensor else {
            throw RuntimeError.kernel(node: node.name, op: node.qualifiedOp, message: "no forward map")
        }
        var inputs: [HostTensor?] = [HostTensor(dtype: .f32, shape: x.shape, f: (0..<x.count).map(Double.init))]
        if forwardOp == "Slice" {
            inputs += step.inputs[2...].map(host)
        } else {
            inputs += [host(step.inputs[2]), HostTensor(dtype: .f32, shape: [], f: [-1])]
        }
        var forward = node
        forward.domain = ""
        forward.op = forwardOp
        let dy = step.inputs[0].tensor!
        let out = try kernel(RefContext(node: forward, inputs: inputs, outputTypes: [TensorType(.f32, dy.shape.map { Dim($0) })]))
        return out[0].f.map { Int32($0) }
    }
}
