import CBLAS
import CKernels
import Compiler
import Foundation
import Graph

extension CompiledModel {
    func run(_ step: Program.Step, index: Int, imageParallel: Bool) throws {
        if try runTraining(step, index: index, imageParallel: imageParallel) { return }
        switch step.kernel {
        case .conv(let c) where c.deferred: break  // computed by the next step (expandDepthwise)
        case .conv(let c) where c.expand != nil: expandDepthwise(c, step, parallel: imageParallel)
        case .conv(let c) where c.gate != nil: try gatedConv(c, step, index: index, parallel: imageParallel)
        case .conv(let c) where c.algorithm == .direct: directConv(c, step, index: index, parallel: imageParallel)
        case .conv(let c) where c.algorithm == .winograd: winogradConv(c, step, index: index)
        case .conv(let c) where c.algorithm == .depthwise: depthwiseConv(c, step, parallel: imageParallel)
        case .conv(let c) where c.algorithm == .int8: try int8Conv(c, step, index: index)
        case .conv(let c) where c.algorithm == .bf16: bf16Conv(c, step, index: index)
        case .conv(let c): conv(c, step, index: index, parallel: imageParallel)
        case .gemm(let g): gemm(g, step)
        case .batchedMatMul(let b): batchedMatMul(b, step)
        case .linear(let l): try linear(l, step, index: index)
        case .layerNorm(let rows, let size, let eps):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.outputs[0]))
            let scale = Shared(pointer: pointer(step.inputs[1].tensor!))
            let bias = step.inputs.count > 2 ? step.inputs[2].tensor.map { Shared(pointer: pointer($0)) } : nil
            parallelChunks(rows, workers: rows * size >= 1 << 14 ? threads : 1, pool: pool) { _, r in
                guard !r.isEmpty else { return }
                kiln_layernorm_rows(x.pointer + r.lowerBound * size, Int32(r.count), Int32(size), scale.pointer, bias?.pointer, eps,
                                    y.pointer + r.lowerBound * size)
            }
        case .groupNorm(let rows, let groups, let perGroup, let inner, let eps):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.outputs[0]))
            let scale = Shared(pointer: pointer(step.inputs[1].tensor!)), bias = Shared(pointer: pointer(step.inputs[2].tensor!))
            let size = perGroup * inner
            parallelChunks(rows, workers: rows * size >= 1 << 14 ? threads : 1, pool: pool) { _, r in
                guard !r.isEmpty else { return }
                kiln_groupnorm_rows(x.pointer + r.lowerBound * size, Int32(r.count), Int32(r.lowerBound), Int32(groups), Int32(perGroup),
                                    Int32(inner), scale.pointer, bias.pointer, eps, y.pointer + r.lowerBound * size)
            }
        case .pool(let p):
            let x = pointer(step.inputs[0].tensor!), y = pointer(step.outputs[0])
            let planes = step.inputs[0].tensor!.shape[0] * step.inputs[0].tensor!.shape[1]
            let inPlane = p.height * p.width, outPlane = p.outHeight * p.outWidth
            let xs = Shared(pointer: x), ys = Shared(pointer: y), geometry = p.geometry
            parallelChunks(planes, workers: threads, pool: pool) { _, range in
                for k in range {
                    if p.isMax {
                        kiln_maxpool2d(xs.pointer + k * inPlane, geometry, ys.pointer + k * outPlane)
                    } else {
                        kiln_avgpool2d(xs.pointer + k * inPlane, geometry, p.includePad ? 1 : 0, ys.pointer + k * outPlane)
                    }
                }
            }
        case .globalAveragePool(let planes, let size):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.outputs[0]))
            // Threads only for 8 MB or more: squeeze-excitation's pools of one image take
            // microseconds once vectorised, and splitting them measured slower end to end
            // (EfficientNet-B0 batch 1: 16.6–16.9 ms single-threaded, 18.6–19.0 with every
            // pool above 128 KB split, 18.0–18.9 above 1 MB).
            parallelChunks(planes, workers: planes * size >= 1 << 21 ? threads : 1, pool: pool) { _, r in
                guard !r.isEmpty else { return }
                kiln_global_avgpool(x.pointer + r.lowerBound * size, Int32(r.count), Int32(size), y.pointer + r.lowerBound)
            }
        case .activation(let a):
            let x = pointer(step.inputs[0].tensor!)
            kiln_activation(x, pointer(step.outputs[0]), step.outputs[0].count, a.kernel)
        case .binary(let op, let period, let inner, let slabs, let slabPeriod):
            guard let a = step.inputs[0].tensor, let b = step.inputs[1].tensor else { throw RuntimeError.kernel(node: step.name, op: step.op, message: "constant operand") }
            let n = step.outputs[0].count
            if slabs > 1 {
                let sa = Shared(pointer: pointer(a)), sb = Shared(pointer: pointer(b)), sy = Shared(pointer: pointer(step.outputs[0]))
                let size = n / slabs
                parallelChunks(slabs, workers: n >= 1 << 16 ? threads : 1, pool: pool) { _, r in
                    for s in r {
                        kiln_binary(sa.pointer + s * size, sb.pointer + (s % slabPeriod) * period, sy.pointer + s * size, size, op, period, inner)
                    }
                }
                return
            }
            // Threads take ranges of whole repeats of b's pattern (4,096 elements for equal
            // shapes), so each range starts at b's first value.
            let unit = period == 0 ? 4096 : period * inner
            if n >= 1 << 16 && threads > 1 && unit <= n / 2 {
                let sa = Shared(pointer: pointer(a)), sb = Shared(pointer: pointer(b)), sy = Shared(pointer: pointer(step.outputs[0]))
                parallelRanges(n, block: unit, workers: threads, pool: pool) { lo, hi in
                    kiln_binary(sa.pointer + lo, period == 0 ? sb.pointer + lo : sb.pointer, sy.pointer + lo, hi - lo, op, period, inner)
                }
            } else {
                kiln_binary(pointer(a), pointer(b), pointer(step.outputs[0]), n, op, period, inner)
            }
        case .scaleShift(let c, let inner, _):
            let table = scaleShift[index]!
            let x = pointer(step.inputs[0].tensor!), y = pointer(step.outputs[0])
            let images = step.outputs[0].shape[0]
            table.withUnsafeBufferPointer { t in
                for n in 0..<images {
                    kiln_scale_shift(x + n * c * inner, y + n * c * inner, Int32(c), Int32(inner), t.baseAddress!, t.baseAddress! + c)
                }
            }
        case .dataMovement:
            gatherMap(step, index: index)
        case .concat(let axis):
            // Each input's slab of each outer index is one copy; large concatenations (a batch of
            // GhostNet's ghost modules) spread the copies over the threads.
            let out = step.outputs[0]
            let outer = out.shape[..<axis].reduce(1, *)
            let parts = step.inputs.compactMap { $0.tensor.map { (Shared(pointer: pointer($0)), $0.shape[axis...].reduce(1, *)) } }
            let row = parts.reduce(0) { $0 + $1.1 }
            var starts = [Int](), at = 0
            for (_, chunk) in parts { starts.append(at); at += chunk }
            let y = Shared(pointer: pointer(out)), begins = starts
            parallelChunks(outer * parts.count, workers: out.count >= 1 << 16 ? threads : 1, pool: pool) { _, range in
                for k in range {
                    let o = k / parts.count, i = k % parts.count, (x, chunk) = parts[i]
                    memmove(y.pointer + o * row + begins[i], x.pointer + o * chunk, chunk * MemoryLayout<Float>.size)
                }
            }
        case .split(let outer, let sizes):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!))
            let ys = step.outputs.map { Shared(pointer: pointer($0)) }
            let row = sizes.reduce(0, +)
            var starts = [Int](), at = 0
            for size in sizes { starts.append(at); at += size }
            let begins = starts
            parallelChunks(outer * sizes.count, workers: outer * row >= 1 << 16 ? threads : 1, pool: pool) { _, range in
                for k in range {
                    let o = k / sizes.count, i = k % sizes.count
                    memmove(ys[i].pointer + o * sizes[i], x.pointer + o * row + begins[i], sizes[i] * MemoryLayout<Float>.size)
                }
            }
        case .elementwiseChain(let ops):
            elementwiseChain(ops, step)
        case .softmax(let log, let outer, let length, let inner):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.outputs[0]))
            parallelChunks(outer, workers: outer * length * inner >= 1 << 14 ? threads : 1, pool: pool) { _, r in
                guard !r.isEmpty else { return }
                let at = r.lowerBound * length * inner
                kiln_softmax_axis(x.pointer + at, y.pointer + at, Int32(r.count), Int32(length), Int32(inner), log ? 1 : 0)
            }
        case .reduce(let kind, let outer, let length, let inner):
            let x = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.outputs[0]))
            // Threads take whole outer blocks.
            parallelChunks(outer, workers: outer * length * inner >= 1 << 15 ? threads : 1, pool: pool) { _, r in
                guard !r.isEmpty else { return }
                kiln_reduce_axis(kind, x.pointer + r.lowerBound * length * inner, Int32(r.count), Int32(length), Int32(inner), y.pointer + r.lowerBound * inner)
            }
        case .convGradData, .convGradWeight, .channelSum, .batchNormTraining, .batchNormGrad, .reluGrad, .globalAveragePoolGrad,
             .scatter, .sgd:
            break  // runTraining ran it
        case .reference(let node):
            guard let kernel = OpRegistry.definition(of: node)?.reference else {
                throw RuntimeError.unsupported(node: node.name, op: node.qualifiedOp)
            }
            let ctx = RefContext(node: node, inputs: step.inputs.map(host), outputTypes: node.outputs.map(\.type))
            let results = try kernel(ctx)
            for (k, t) in step.outputs.enumerated() {
                let p = pointer(t)
                for j in 0..<t.count { p[j] = Float(results[k].value(j)) }
            }
        }
    }

    /// Slice, Pad, Transpose, Gather: the index map covers one image (repeated per image) or
    /// the whole batch.
    func gatherMap(_ step: Program.Step, index: Int) {
        // The map covers one image (repeated per image) or the whole batch.
        let map = maps[index]!, run = runLengths[index] ?? 1
        let x = step.inputs[0].tensor!, out = step.outputs[0]
        let repeats = out.count / max(map.count * run, 1)
        let inStride = x.count / max(repeats, 1)
        let xs = Shared(pointer: pointer(x)), ys = Shared(pointer: pointer(out)), fill = fills[index] ?? 0
        map.withUnsafeBufferPointer { m in
            let ms = Shared(pointer: UnsafeMutablePointer(mutating: m.baseAddress!)), count = m.count
            if run > 1 {
                // Runs: threads take ranges of them (one repeat or many).
                let total = repeats * count
                parallelChunks(total, workers: total * run >= 1 << 14 ? threads : 1, pool: pool) { _, range in
                    var k = range.lowerBound
                    while k < range.upperBound {
                        let n = k / count, first = k % count, last = min(count, first + range.upperBound - k)
                        kiln_gather_runs(xs.pointer + n * inStride, ms.pointer + first, last - first, run, fill, ys.pointer + (n * count + first) * run)
                        k += last - first
                    }
                }
                return
            }
            parallelChunks(repeats, workers: repeats * count >= 1 << 14 ? threads : 1, pool: pool) { _, range in
                for n in range { kiln_gather_map(xs.pointer + n * inStride, ms.pointer, count, fill, ys.pointer + n * count) }
            }
        }
    }

    /// A fused elementwise chain in one pass; threads take ranges of 2,048-element blocks (the
    /// kernel's unit) when the tensor is large.
    func elementwiseChain(_ ops: [Program.ElementwiseOp], _ step: Program.Step) {
        let x = pointer(step.inputs[0].tensor!), y = pointer(step.outputs[0])
        withUnsafeTemporaryAllocation(of: kiln_ew_op.self, capacity: ops.count) { buffer in
            for (k, op) in ops.enumerated() {
                let operand = op.operand >= 0 ? step.inputs[op.operand].tensor.map { UnsafePointer(pointer($0)) } : nil
                buffer[k] = kiln_ew_op(kind: op.kind, swap: op.swap ? 1 : 0, operand: operand, period: op.period, inner: op.inner,
                                       alpha: op.activation.alpha, lo: op.activation.low, hi: op.activation.high)
            }
            // Threads take ranges of 2,048-element blocks (the kernel's unit) when the tensor is large.
            let n = step.outputs[0].count
            let sx = Shared(pointer: UnsafeMutablePointer(mutating: x)), sy = Shared(pointer: y)
            let sops = Shared(pointer: buffer.baseAddress!), count = Int32(ops.count)
            parallelRanges(n, block: 2048, workers: n >= 1 << 16 ? threads : 1, pool: pool) { lo, hi in
                kiln_elementwise_chain_range(sx.pointer, sy.pointer, lo, hi, sops.pointer, count)
            }
        }
    }

    /// im2col or 1×1 convolution as a matrix product: Kiln's packed kernel with the epilogue
    /// fused (one group, output channels in blocks of 8), OpenBLAS otherwise. Long by choice:
    /// both paths share the operands, sizes and scratch set up first, and each path's three
    /// ways of spreading work over threads (images, panels, channel blocks) read best side by side.
    func conv(_ c: Program.Conv, _ step: Program.Step, index: Int, parallel: Bool) {
        let (x, bias, residual, y) = convOperands(step)
        let w = Shared(pointer: pointer(step.inputs[1].tensor!))
        let images = step.outputs[0].shape[0]
        let inImage = c.channels * c.height * c.width
        let p = c.outHeight * c.outWidth, outImage = c.outChannels * p
        let cg = c.channels / c.group, mg = c.outChannels / c.group
        let k = cg * c.kernelH * c.kernelW
        let scratch = self.scratch.map { Shared(pointer: $0) }
        let act = c.activation.kernel, groupGeometry = c.geometry(channels: cg)
        func im2colRows(_ xn: UnsafeMutablePointer<Float>, _ rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
            kiln_im2col_rows(xn, groupGeometry, Int32(rows.lowerBound), Int32(rows.upperBound), col)
        }
        if let packed = packedWeights[index], c.group > 1 {
            groupedConv(c, step, packed: packed, parallel: parallel)
            return
        }
        if let packed = packedWeights[index] {
            let u = Shared(pointer: packed), blocks = c.outChannels / 8, oneByOne = c.algorithm == .gemm1x1
            let rest = c.outChannels % 8, none = Program.Activation.none.kernel
            /// The output channels past the last whole block for `cols` columns of B (`ldb`
            /// apart) whose outputs start at `at` in every output row: the partial block into
            /// the worker's scratch, then its valid rows out with bias, residual and activation.
            func remainder(_ b: UnsafeMutablePointer<Float>, cols: Int, ldb: Int, at: Int, worker: Int) {
                guard rest > 0, cols > 0, let offset = c.remainder else { return }
                let tmp = scratch[worker].pointer + offset
                // The partial block as block 0 of its own, so its rows are tmp's rows 0…7.
                kiln_conv_gemm_ld(u.pointer + blocks * k * 8, b, Int32(k), Int32(cols), ldb, 0, 1, nil, nil, cols, none, tmp, nil)
                for r in 0..<rest {
                    let m = blocks * 8 + r, row = y.pointer + at + m * p
                    row.update(from: tmp + r * cols, count: cols)
                    kiln_epilogue(row, 1, Int32(cols), bias.map { $0.pointer + m }, residual.map { $0.pointer + at + m * p }, act)
                }
            }
            /// Worker `worker`'s room for the kernel's copies of B's column chunks.
            func pack(_ worker: Int) -> UnsafeMutablePointer<Float>? { c.pack.map { scratch[worker].pointer + $0 } }
            func multiply(_ n: Int, _ columns: UnsafeMutablePointer<Float>, _ range: Range<Int>, worker: Int) {
                kiln_conv_gemm_ld(u.pointer, columns, Int32(k), Int32(p), p, Int32(range.lowerBound), Int32(range.upperBound), bias?.pointer,
                                  residual.map { $0.pointer + n * outImage }, p, act, y.pointer + n * outImage, pack(worker))
            }
            // Panels of ~256 KB of patches, but at least 96 columns (four of the product's
            // column chunks), so small late-stage images are not cut into slivers.
            let rowsPerPanel = max(1, min(c.outHeight, max(65536 / max(1, k * c.outWidth), (96 + c.outWidth - 1) / c.outWidth)))
            let panels = (c.outHeight + rowsPerPanel - 1) / rowsPerPanel
            if !oneByOne && (parallel || panels >= 2 * threads) {
                // Patches a panel of output rows at a time (~256 KB, so the product reads them
                // from cache), panels spread over threads — or images, when there are enough.
                func panel(_ n: Int, _ j: Int, worker: Int) {
                    let oh0 = j * rowsPerPanel, oh1 = min(c.outHeight, oh0 + rowsPerPanel), col = scratch[worker].pointer
                    kiln_im2col_out_rows(x.pointer + n * inImage, groupGeometry, Int32(oh0), Int32(oh1), col)
                    let at = n * outImage + oh0 * c.outWidth
                    let cols = (oh1 - oh0) * c.outWidth
                    kiln_conv_gemm_ld(u.pointer, col, Int32(k), Int32(cols), cols, 0, Int32(blocks), bias?.pointer,
                                      residual.map { $0.pointer + at }, p, act, y.pointer + at, pack(worker))
                    remainder(col, cols: cols, ldb: cols, at: at, worker: worker)
                }
                if parallel {
                    parallelChunks(images, workers: threads, pool: pool) { worker, range in
                        for n in range { for j in 0..<panels { panel(n, j, worker: worker) } }
                    }
                } else {
                    for n in 0..<images {
                        parallelChunks(panels, workers: threads, pool: pool) { worker, range in
                            for j in range { panel(n, j, worker: worker) }
                        }
                    }
                }
                return
            }
            if parallel && oneByOne {
                parallelChunks(images, workers: threads, pool: pool) { worker, range in
                    for n in range {
                        multiply(n, x.pointer + n * inImage, 0..<blocks, worker: worker)
                        remainder(x.pointer + n * inImage, cols: p, ldb: p, at: n * outImage, worker: worker)
                    }
                }
            } else if oneByOne && p >= 48 * threads && (columnsBalance(p) >= 0.9 || blocks < 2 * threads) {
                // One image, columns (positions) split over threads: each thread reads only its
                // columns of the input, which the layer before wrote in its own cache when it
                // split the same way; chunks of 24 columns, the kernel's tile width. Not when
                // the chunks divide badly (14² = 196 columns: 120 and 76 on two threads): then
                // the channel blocks are split below.
                let chunks = (p + 23) / 24
                for n in 0..<images {
                    parallelChunks(chunks, workers: threads, pool: pool) { worker, range in
                        let n0 = range.lowerBound * 24, n1 = min(p, range.upperBound * 24)
                        guard n1 > n0 else { return }
                        kiln_conv_gemm_ld(u.pointer, x.pointer + n * inImage + n0, Int32(k), Int32(n1 - n0), p, 0, Int32(blocks), bias?.pointer,
                                          residual.map { $0.pointer + n * outImage + n0 }, p, act, y.pointer + n * outImage + n0, pack(worker))
                        remainder(x.pointer + n * inImage + n0, cols: n1 - n0, ldb: p, at: n * outImage + n0, worker: worker)
                    }
                }
            } else {
                // One image at a time; small images' patches (fewer panels than threads) whole,
                // split over threads by (channel, kernel row), then the product by channel blocks.
                for n in 0..<images {
                    let xn = Shared(pointer: x.pointer + n * inImage)
                    if !oneByOne {
                        parallelChunks(cg * c.kernelH, workers: threads, pool: pool) { _, rows in im2colRows(xn.pointer, rows, into: scratch[0].pointer) }
                    }
                    let columns = Shared(pointer: oneByOne ? xn.pointer : scratch[0].pointer)
                    parallelChunks(blocks, workers: threads, pool: pool) { worker, range in multiply(n, columns.pointer, range, worker: worker) }
                    remainder(columns.pointer, cols: p, ldb: p, at: n * outImage, worker: 0)
                }
            }
            return
        }
        if !parallel && threads > 1 {
            // Small batches: one image at a time, the matrix product split over column ranges.
            for n in 0..<images {
                let xn = x.pointer + n * inImage, yn = y.pointer + n * outImage
                for g in 0..<c.group {
                    let xg = xn + g * cg * c.height * c.width
                    if c.algorithm != .gemm1x1 {
                        // The patch matrix by (channel, kernel row) pairs across threads.
                        let xs = Shared(pointer: xg)
                        parallelChunks(cg * c.kernelH, workers: threads, pool: pool) { _, rows in im2colRows(xs.pointer, rows, into: scratch[0].pointer) }
                    }
                    let columns = c.algorithm == .gemm1x1 ? xg : scratch[0].pointer
                    let cols = Shared(pointer: columns), wg = Shared(pointer: w.pointer + g * mg * k), yg = Shared(pointer: yn + g * mg * p)
                    let chunks = (p + 15) / 16
                    parallelChunks(chunks, workers: threads, pool: pool) { _, range in
                        let p0 = range.lowerBound * 16, p1 = min(p, range.upperBound * 16)
                        guard p1 > p0 else { return }
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(mg), Int32(p1 - p0), Int32(k), 1,
                                    wg.pointer, Int32(k), cols.pointer + p0, Int32(p), 0, yg.pointer + p0, Int32(p))
                    }
                }
                let yns = Shared(pointer: yn)
                parallelChunks(c.outChannels, workers: threads, pool: pool) { _, range in
                    kiln_epilogue(yns.pointer + range.lowerBound * p, Int32(range.count), Int32(p), bias.map { $0.pointer + range.lowerBound },
                                  residual.map { $0.pointer + n * outImage + range.lowerBound * p }, act)
                }
            }
            return
        }
        let body: (Int, Range<Int>) -> Void = { worker, range in
            for n in range {
                let xn = x.pointer + n * inImage, yn = y.pointer + n * outImage
                for g in 0..<c.group {
                    let xg = xn + g * cg * c.height * c.width
                    let wg = w.pointer + g * mg * k
                    let yg = yn + g * mg * p
                    let columns = c.algorithm == .gemm1x1 ? xg : self.im2col(c, xg, channels: cg, into: scratch[worker].pointer)
                    // y_g [mg, P] = w_g [mg, K] · columns [K, P]
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(mg), Int32(p), Int32(k), 1,
                                wg, Int32(k), columns, Int32(p), 0, yg, Int32(p))
                }
                kiln_epilogue(yn, Int32(c.outChannels), Int32(p), bias?.pointer, residual.map { $0.pointer + n * outImage }, act)
            }
        }
        parallelChunks(images, workers: parallel ? threads : 1, pool: pool, body)
    }

    /// The depthwise kernel: images spread over threads, or (small batches) each image's
    /// channels.
    func depthwiseConv(_ c: Program.Conv, _ step: Program.Step, parallel: Bool) {
        let (x, bias, residual, y) = convOperands(step)
        let w = Shared(pointer: pointer(step.inputs[1].tensor!))
        let images = step.outputs[0].shape[0]
        let inImage = c.channels * c.height * c.width, outImage = c.outChannels * c.outHeight * c.outWidth
        let geometry = c.geometry(), act = c.activation.kernel
        let scratch = self.scratch.map { Shared(pointer: $0) }
        func run(_ n: Int, _ channels: Range<Int>, _ rows: Range<Int>, worker: Int) {
            guard !channels.isEmpty, !rows.isEmpty else { return }
            kiln_conv_depthwise(x.pointer + n * inImage, geometry, w.pointer, Int32(channels.lowerBound), Int32(channels.upperBound),
                                Int32(rows.lowerBound), Int32(rows.upperBound), bias?.pointer, residual.map { $0.pointer + n * outImage },
                                act, scratch[worker].pointer, y.pointer + n * outImage)
        }
        let all = 0..<c.outHeight
        if parallel {
            parallelChunks(images, workers: threads, pool: pool) { worker, range in
                for n in range { run(n, 0..<c.outChannels, all, worker: worker) }
            }
        } else {
            // One image: channels split over threads (measured 2–3 % faster on MobileNetV2 than
            // output rows, whose halos are padded twice); small layers stay on one thread, where
            // waking the others costs more than they save.
            let workers = outImage >= 1 << 14 ? threads : 1
            for n in 0..<images {
                parallelChunks(c.outChannels, workers: workers, pool: pool) { worker, range in run(n, range, all, worker: worker) }
            }
        }
    }

    /// The 1×1 → depthwise pair (Program.Expand): per image, output rows in bands; for each
    /// band the 1×1 makes the rows of its output the band reads that the previous band did
    /// not (those it shares move to the top of the scratch), then the depthwise kernel reads
    /// them there. Images over threads, or one image's rows in a contiguous range per thread.
    func expandDepthwise(_ c: Program.Conv, _ step: Program.Step, parallel: Bool) {
        guard let e = c.expand, case .conv(let pw) = program.steps[e.step].kernel, let packed = packedWeights[e.step] else {
            preconditionFailure("fused 1×1 → depthwise step without its 1×1 step")
        }
        let pwStep = program.steps[e.step]
        let x = Shared(pointer: pointer(step.inputs[0].tensor!)), u = Shared(pointer: packed)
        let bias1 = pwStep.inputs.count > 2 ? pwStep.inputs[2].tensor.map { Shared(pointer: pointer($0)) } : nil
        let w = Shared(pointer: pointer(step.inputs[1].tensor!))
        let bias2 = step.inputs.count > 2 ? step.inputs[2].tensor.map { Shared(pointer: pointer($0)) } : nil
        let y = Shared(pointer: pointer(step.outputs[0]))
        let images = step.outputs[0].shape[0]
        let (h, wd, ch) = (c.height, c.width, c.channels)
        let inImage = pw.channels * h * wd, outImage = ch * c.outHeight * c.outWidth
        let plane = e.capacityRows * wd, blocks = ch / 8
        let geometry = c.geometry(), act1 = pw.activation.kernel, act2 = c.activation.kernel
        let scratch = self.scratch.map { Shared(pointer: $0) }
        func rows(_ n: Int, _ range: Range<Int>, worker: Int) {
            let buffer = scratch[worker].pointer + e.offset, xn = x.pointer + n * inImage
            var held = 0..<0  // rows of the 1×1's output in the buffer, from its top
            for oy0 in stride(from: range.lowerBound, to: range.upperBound, by: e.bandRows) {
                let oy1 = min(range.upperBound, oy0 + e.bandRows)
                let r0 = max(0, oy0 * c.strideH - c.padTop)
                let r1 = min(h, (oy1 - 1) * c.strideH - c.padTop + (c.kernelH - 1) * c.dilationH + 1)
                if r1 > r0 {
                    var start = r0
                    if held.contains(r0) {
                        if r0 > held.lowerBound {
                            for k in 0..<ch {
                                let p = buffer + k * plane
                                memmove(p, p + (r0 - held.lowerBound) * wd, (held.upperBound - r0) * wd * MemoryLayout<Float>.stride)
                            }
                        }
                        start = held.upperBound
                    }
                    if r1 > start {
                        kiln_conv_gemm_ld(u.pointer, xn + start * wd, Int32(pw.channels), Int32((r1 - start) * wd), h * wd, 0, Int32(blocks),
                                          bias1?.pointer, nil, plane, act1, buffer + (start - r0) * wd, nil)
                    }
                    held = r0..<r1
                }
                kiln_conv_depthwise_rows(buffer, plane, Int32(r0), geometry, w.pointer, 0, Int32(ch), Int32(oy0), Int32(oy1), bias2?.pointer,
                                         nil, act2, scratch[worker].pointer, y.pointer + n * outImage)
            }
        }
        if parallel {
            parallelChunks(images, workers: threads, pool: pool) { worker, range in
                for n in range { rows(n, 0..<c.outHeight, worker: worker) }
            }
        } else {
            for n in 0..<images {
                parallelChunks(c.outHeight, workers: min(threads, c.outHeight), pool: pool) { worker, range in
                    guard !range.isEmpty else { return }
                    rows(n, range, worker: worker)
                }
            }
        }
    }

    /// A grouped convolution whose groups have output channels in multiples of 8 (RegNet's):
    /// per group, its patches, then the packed GEMM over the group's channel blocks with the
    /// epilogue fused (the weights are packed as one [M/8][K][8] with K a group's patch size,
    /// so group g's blocks are g·M/(8·groups) …). Images over threads, or one image's groups.
    func groupedConv(_ c: Program.Conv, _ step: Program.Step, packed: UnsafeMutablePointer<Float>, parallel: Bool) {
        let (x, bias, residual, y) = convOperands(step)
        let images = step.outputs[0].shape[0], plane = c.height * c.width
        let p = c.outHeight * c.outWidth, outImage = c.outChannels * p, inImage = c.channels * plane
        let cg = c.channels / c.group, blocksPerGroup = c.outChannels / c.group / 8, k = cg * c.kernelH * c.kernelW
        let u = Shared(pointer: packed), scratch = self.scratch.map { Shared(pointer: $0) }
        let act = c.activation.kernel, geometry = c.geometry(channels: cg)
        func run(_ n: Int, _ g: Int, worker: Int) {
            let col = scratch[worker].pointer
            kiln_im2col(x.pointer + n * inImage + g * cg * plane, geometry, col)
            kiln_conv_gemm_ld(u.pointer, col, Int32(k), Int32(p), p, Int32(g * blocksPerGroup), Int32((g + 1) * blocksPerGroup), bias?.pointer,
                              residual.map { $0.pointer + n * outImage }, p, act, y.pointer + n * outImage, nil)
        }
        if parallel {
            parallelChunks(images, workers: threads, pool: pool) { worker, range in
                for n in range { for g in 0..<c.group { run(n, g, worker: worker) } }
            }
        } else {
            for n in 0..<images {
                parallelChunks(c.group, workers: threads, pool: pool) { worker, range in for g in range { run(n, g, worker: worker) } }
            }
        }
    }

    /// How evenly `p` columns in chunks of 24 (the packed kernel's tile width) spread over the
    /// threads: the mean share over the largest.
    func columnsBalance(_ p: Int) -> Double {
        let chunks = (p + 23) / 24, most = min(p, (chunks + threads - 1) / threads * 24)
        return Double(p) / Double(threads * most)
    }

    /// A 1×1 convolution of x ⊙ s (Program.Conv.gate): per image, the packed weight's columns
    /// scaled by the gate into scratch, then the packed GEMM on x itself. Images over threads,
    /// or (one image at a time) the scaling split by channel blocks and the product by columns
    /// or blocks as the plain 1×1 convolution splits it.
    func gatedConv(_ c: Program.Conv, _ step: Program.Step, index: Int, parallel: Bool) throws {
        guard let offset = c.gate, let packed = packedWeights[index], step.inputs.count > 4, let g = step.inputs[4].tensor else {
            throw RuntimeError.kernel(node: step.name, op: step.op, message: "gated convolution without its packed weight or gate")
        }
        let (x, bias, residual, y) = convOperands(step)
        let gate = Shared(pointer: pointer(g)), u = Shared(pointer: packed)
        let images = step.outputs[0].shape[0], p = c.outHeight * c.outWidth, k = c.channels, blocks = c.outChannels / 8
        let inImage = k * p, outImage = c.outChannels * p, act = c.activation.kernel
        let scratch = self.scratch.map { Shared(pointer: $0 + offset) }
        /// Blocks `range` of the packed weight [blocks][K][8] with column kk times s[n, kk].
        func scale(_ n: Int, _ range: Range<Int>, into w: UnsafeMutablePointer<Float>) {
            let s = gate.pointer + n * k
            for mb in range {
                let src = u.pointer + mb * k * 8, dst = w + mb * k * 8
                for kk in 0..<k {
                    let v = s[kk]
                    for i in 0..<8 { dst[kk * 8 + i] = src[kk * 8 + i] * v }
                }
            }
        }
        func multiply(_ n: Int, _ w: UnsafeMutablePointer<Float>, columns: Range<Int>, blocks range: Range<Int>, worker: Int) {
            guard !columns.isEmpty, !range.isEmpty else { return }
            kiln_conv_gemm_ld(w, x.pointer + n * inImage + columns.lowerBound, Int32(k), Int32(columns.count), p, Int32(range.lowerBound),
                              Int32(range.upperBound), bias?.pointer, residual.map { $0.pointer + n * outImage + columns.lowerBound }, p, act,
                              y.pointer + n * outImage + columns.lowerBound, c.pack.map { self.scratch[worker] + $0 })
        }
        if parallel {
            parallelChunks(images, workers: threads, pool: pool) { worker, range in
                for n in range {
                    scale(n, 0..<blocks, into: scratch[worker].pointer)
                    multiply(n, scratch[worker].pointer, columns: 0..<p, blocks: 0..<blocks, worker: worker)
                }
            }
            return
        }
        let w = scratch[0]
        for n in 0..<images {
            parallelChunks(blocks, workers: blocks * k >= 1 << 12 ? threads : 1, pool: pool) { _, range in scale(n, range, into: w.pointer) }
            if p >= 48 * threads && (columnsBalance(p) >= 0.9 || blocks < 2 * threads) {
                // Columns in chunks of 24, the kernel's tile width.
                parallelChunks((p + 23) / 24, workers: threads, pool: pool) { worker, r in
                    multiply(n, w.pointer, columns: r.lowerBound * 24..<min(p, r.upperBound * 24), blocks: 0..<blocks, worker: worker)
                }
            } else {
                parallelChunks(blocks, workers: threads, pool: pool) { worker, r in multiply(n, w.pointer, columns: 0..<p, blocks: r, worker: worker) }
            }
        }
    }

    /// Patches of one image (or group) as columns [channels·KH·KW, OH·OW] in `scratch`.
    func im2col(_ c: Program.Conv, _ x: UnsafeMutablePointer<Float>, channels: Int, into scratch: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        kiln_im2col(x, c.geometry(channels: channels), scratch)
        return scratch
    }

    /// A QDQ model's convolution on the int8 kernel (see narrowConv).
    func int8Conv(_ c: Program.Conv, _ step: Program.Step, index: Int) throws {
        guard let packed = packedWeights[index], let input = c.int8, !int8Unpackable.contains(index) else {
            throw RuntimeError.kernel(node: step.name, op: step.op, message: "the weights are not on an int8 grid (changed since the compile): compile the model again")
        }
        let g = c.geometry(channels: c.channels), header = Self.int8Header(c), act = c.activation.kernel
        let scale = Shared(pointer: packed), offsets = Shared(pointer: UnsafeMutableRawPointer(packed + header).assumingMemoryBound(to: Int32.self))
        let weights = Shared(pointer: UnsafeMutableRawPointer(packed + 2 * header).assumingMemoryBound(to: Int8.self))
        narrowConv(c, step, convert: { x, channels, source in
            kiln_qconv_quantize(x, g, input.scale, Int32(input.zero), Int32(channels.lowerBound), Int32(channels.upperBound), source)
        }, multiply: { source, cols, blocks, bias, residual, chunk, y in
            kiln_qconv_gemm(weights.pointer, source, g, Int32(cols.lowerBound), Int32(cols.upperBound), Int32(blocks.lowerBound), Int32(blocks.upperBound),
                            scale.pointer, offsets.pointer, bias, residual, act, chunk, y)
        })
    }

    /// A convolution on the bf16 kernel (see narrowConv).
    func bf16Conv(_ c: Program.Conv, _ step: Program.Step, index: Int) {
        guard let packed = packedWeights[index] else { preconditionFailure("bf16 convolution without packed weights") }
        let g = c.geometry(channels: c.channels), act = c.activation.kernel
        let weights = Shared(pointer: UnsafeMutableRawPointer(packed).assumingMemoryBound(to: UInt16.self))
        narrowConv(c, step, convert: { x, channels, source in
            kiln_bconv_convert(x, g, Int32(channels.lowerBound), Int32(channels.upperBound), UnsafeMutableRawPointer(source).assumingMemoryBound(to: UInt16.self))
        }, multiply: { source, cols, blocks, bias, residual, chunk, y in
            kiln_bconv_gemm(weights.pointer, UnsafeMutableRawPointer(source).assumingMemoryBound(to: UInt16.self), g, Int32(cols.lowerBound),
                            Int32(cols.upperBound), Int32(blocks.lowerBound), Int32(blocks.upperBound), bias, residual, act, chunk, y)
        })
    }

    /// The int8 and bf16 kernels' work over the threads: whole images per thread when there
    /// are enough (each converted into the thread's own scratch: no barrier between the
    /// conversion and the product, both in that core's cache); otherwise per image, the input
    /// converted into its padded phases (over the threads by channels, into worker 0's scratch),
    /// then the product's column chunks (or, with few of them, its blocks of output channels)
    /// over the threads. `convert(x, channels, source)` and `multiply(source, columns, blocks,
    /// bias, residual, chunk, y)` call the kernels; each worker's chunk scratch starts at the
    /// planned second part.
    func narrowConv(_ c: Program.Conv, _ step: Program.Step,
                    convert: @escaping (UnsafeMutablePointer<Float>, Range<Int>, UnsafeMutablePointer<UInt8>) -> Void,
                    multiply: @escaping (UnsafeMutablePointer<UInt8>, Range<Int>, Range<Int>, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
                                         UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<Float>) -> Void) {
        let (x, bias, residual, y) = convOperands(step)
        let g = c.geometry(channels: c.channels)
        let images = step.outputs[0].shape[0], inImage = c.channels * c.height * c.width, outImage = c.outChannels * c.outHeight * c.outWidth
        let scratch = self.scratch.map { Shared(pointer: UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt8.self)) }
        let chunkAt = c.scratch.second * MemoryLayout<Float>.size
        let columns = Int(kiln_qconv_columns(g)), chunks = (columns + 31) / 32, blocks = (c.outChannels + 7) / 8
        let work = c.outChannels * c.channels * c.kernelH * c.kernelW * c.outHeight * c.outWidth
        let workers = work >= 1 << 20 ? threads : 1
        if threads > 1 && images >= 2 * threads && images * work >= 1 << 20 {
            parallelChunks(images, workers: threads, pool: pool) { worker, r in
                for n in r {
                    convert(x.pointer + n * inImage, 0..<c.channels, scratch[worker].pointer)
                    multiply(scratch[worker].pointer, 0..<columns, 0..<blocks, bias?.pointer, residual.map { $0.pointer + n * outImage },
                             scratch[worker].pointer + chunkAt, y.pointer + n * outImage)
                }
            }
            return
        }
        for n in 0..<images {
            parallelChunks(c.channels, workers: inImage >= 1 << 15 ? workers : 1, pool: pool) { _, r in
                guard !r.isEmpty else { return }
                convert(x.pointer + n * inImage, r, scratch[0].pointer)
            }
            let byColumns = chunks >= 2 * workers || blocks < workers
            parallelChunks(byColumns ? chunks : blocks, workers: workers, pool: pool) { worker, r in
                guard !r.isEmpty else { return }
                let cols = byColumns ? (r.lowerBound * 32)..<min(columns, r.upperBound * 32) : 0..<columns
                multiply(scratch[0].pointer, cols, byColumns ? 0..<blocks : r, bias?.pointer, residual.map { $0.pointer + n * outImage },
                         scratch[worker].pointer + chunkAt, y.pointer + n * outImage)
            }
        }
    }

    /// Input, bias, residual and output pointers of a (fused) convolution step.
    func convOperands(_ step: Program.Step) -> (Shared<Float>, Shared<Float>?, Shared<Float>?, Shared<Float>) {
        (Shared(pointer: pointer(step.inputs[0].tensor!)),
         step.inputs.count > 2 ? step.inputs[2].tensor.map { Shared(pointer: pointer($0)) } : nil,
         step.inputs.count > 3 ? step.inputs[3].tensor.map { Shared(pointer: pointer($0)) } : nil,
         Shared(pointer: pointer(step.outputs[0])))
    }

    /// The direct kernel: images spread over threads, or (small batches) blocks of 8 output
    /// channels of each image. Grouped, each group's channels are padded and its blocks run
    /// (images over threads, or one image's groups).
    func directConv(_ c: Program.Conv, _ step: Program.Step, index: Int, parallel: Bool) {
        let (x, bias, residual, y) = convOperands(step)
        let images = step.outputs[0].shape[0]
        let cg = c.channels / c.group, blocksPerGroup = c.outChannels / c.group / 8
        let inImage = c.channels * c.height * c.width, outImage = c.outChannels * c.outHeight * c.outWidth
        let geometry = c.geometry(channels: cg)
        let plane = Int(kiln_conv_shift_plane(geometry))
        let blocks = c.outChannels / 8
        let scratch = self.scratch.map { Shared(pointer: $0) }
        let w = Shared(pointer: packedWeights[index]!)
        /// Group `g`'s input channels of image n, padded into `xp`.
        func pad(_ n: Int, group g: Int = 0, into xp: UnsafeMutablePointer<Float>) {
            kiln_conv_shift_pad(x.pointer + n * inImage + g * cg * c.height * c.width, geometry, Int32(plane), xp)
        }
        func compute(_ n: Int, _ xp: UnsafeMutablePointer<Float>, _ blockRange: Range<Int>) {
            kiln_conv_shift(xp, geometry, Int32(plane), w.pointer, Int32(blockRange.lowerBound), Int32(blockRange.upperBound),
                            bias?.pointer, residual.map { $0.pointer + n * outImage }, c.activation.kernel, y.pointer + n * outImage)
        }
        if c.group > 1 {
            func run(_ n: Int, _ g: Int, worker: Int) {
                pad(n, group: g, into: scratch[worker].pointer)
                compute(n, scratch[worker].pointer, g * blocksPerGroup..<(g + 1) * blocksPerGroup)
            }
            if parallel {
                parallelChunks(images, workers: threads, pool: pool) { worker, range in
                    for n in range { for g in 0..<c.group { run(n, g, worker: worker) } }
                }
            } else {
                for n in 0..<images {
                    parallelChunks(c.group, workers: threads, pool: pool) { worker, range in for g in range { run(n, g, worker: worker) } }
                }
            }
            return
        }
        if parallel {
            parallelChunks(images, workers: threads, pool: pool) { worker, range in
                for n in range {
                    pad(n, into: scratch[worker].pointer)
                    compute(n, scratch[worker].pointer, 0..<blocks)
                }
            }
        } else {
            // The padded copy split by channels too (from 64 Ki values: a strided layer's
            // input is large, and the copy once took as long as the products).
            for n in 0..<images {
                let xp = scratch[0]
                parallelChunks(c.channels, workers: inImage >= 1 << 16 ? threads : 1, pool: pool) { _, range in
                    guard !range.isEmpty else { return }
                    var part = geometry
                    part.C = Int32(range.count)
                    kiln_conv_shift_pad(x.pointer + n * inImage + range.lowerBound * c.height * c.width, part, Int32(plane),
                                        xp.pointer + range.lowerBound * plane)
                }
                parallelChunks(blocks, workers: threads, pool: pool) { _, range in compute(n, xp.pointer, range) }
            }
        }
    }

    /// A linear layer on its packed weight: threads take equal runs of the kernel's register
    /// tiles of rows (197 tokens: 102 and 95 rows, where blocks of 24 split 120 and 77), or
    /// column panels when there are too few rows.
    func linear(_ l: Program.Linear, _ step: Program.Step, index: Int) throws {
        guard let packed = packedWeights[index] else {
            throw RuntimeError.kernel(node: step.name, op: step.op, message: "the weight was not packed")
        }
        let x = Shared(pointer: pointer(step.inputs[0].tensor!)), y = Shared(pointer: pointer(step.outputs[0]))
        let w = Shared(pointer: packed)
        let bias = step.inputs.count > 2 ? step.inputs[2].tensor.map { Shared(pointer: pointer($0)) } : nil
        let residual = step.inputs.count > 3 ? step.inputs[3].tensor.map { Shared(pointer: pointer($0)) } : nil
        let tile = Int(kiln_linear_tile_rows())
        let panels = (l.n + 31) / 32, tiles = (l.rows + tile - 1) / tile, act = l.activation.kernel
        let (k, n, rows) = (Int32(l.k), Int32(l.n), l.rows)
        let workers = l.rows * l.n * l.k >= 1 << 16 ? threads : 1
        if l.rows > 36 * workers || panels < workers {
            parallelChunks(tiles, workers: workers, pool: pool) { _, r in
                let lo = r.lowerBound * tile, hi = min(rows, r.upperBound * tile)
                guard hi > lo else { return }
                kiln_linear(x.pointer, k, n, w.pointer, Int32(lo), Int32(hi), 0, Int32(panels), bias?.pointer, residual?.pointer, act, y.pointer)
            }
        } else {
            parallelChunks(panels, workers: workers, pool: pool) { _, p in
                guard !p.isEmpty else { return }
                kiln_linear(x.pointer, k, n, w.pointer, 0, Int32(rows), Int32(p.lowerBound), Int32(p.upperBound), bias?.pointer, residual?.pointer,
                            act, y.pointer)
            }
        }
    }

    /// One product per output batch element (attention's q·kᵀ and p·v): B packed into the
    /// thread's scratch for the linear kernel (its panels; α folded into the packing), then
    /// the product; elements spread over threads, or (fewer elements than threads) each
    /// product's rows after one packing.
    func batchedMatMul(_ b: Program.BatchedMatMul, _ step: Program.Step) {
        if let v = b.value { return attention(b, v, step) }
        let sa = Shared(pointer: pointer(step.inputs[0].tensor!)), sb = Shared(pointer: pointer(step.inputs[1].tensor!))
        let sy = Shared(pointer: pointer(step.outputs[0]))
        let softmax = b.softmax ? Shared(pointer: pointer(step.outputs[1])) : nil
        let count = b.aOffsets.count, mn = b.m * b.n
        let scratch = self.scratch.map { Shared(pointer: $0) }
        let none = Program.Activation.none.kernel
        func pack(_ i: Int, into p: UnsafeMutablePointer<Float>) { Self.packB(b, i, from: sb.pointer, into: p) }
        func product(_ i: Int, rows: Range<Int>, packed p: UnsafeMutablePointer<Float>) {
            guard !rows.isEmpty else { return }
            kiln_linear(sa.pointer + b.aOffsets[i], Int32(b.k), Int32(b.n), p, Int32(rows.lowerBound), Int32(rows.upperBound), 0,
                        Int32((b.n + 31) / 32), nil, nil, none, sy.pointer + i * mn)
            if let softmax {
                let at = i * mn + rows.lowerBound * b.n
                kiln_softmax_rows(sy.pointer + at, softmax.pointer + at, Int32(rows.count), Int32(b.n), 0)
            }
        }
        let workers = count * mn * b.k >= 1 << 16 ? threads : 1
        if count >= workers {
            parallelChunks(count, workers: workers, pool: pool) { worker, range in
                for i in range {
                    pack(i, into: scratch[worker].pointer)
                    product(i, rows: 0..<b.m, packed: scratch[worker].pointer)
                }
            }
        } else {
            for i in 0..<count {
                pack(i, into: scratch[0].pointer)
                parallelChunks(b.m, workers: workers, pool: pool) { _, rows in product(i, rows: rows, packed: scratch[0].pointer) }
            }
        }
    }

    /// Product `i`'s B (at its offset in `b`) packed for the linear kernel, α folded in.
    static func packB(_ p: Program.BatchedMatMul, _ i: Int, from b: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        kiln_linear_pack(b + p.bOffsets[i], Int32(p.k), Int32(p.n), p.transB ? 1 : 0, out)
        guard p.alpha != 1 else { return }
        for j in 0..<kiln_linear_packed_size(Int32(p.k), Int32(p.n)) { out[j] *= p.alpha }
    }

    /// softmax(α·A·Bᵀ)·V, product by product: Bᵀ (scaled by α) and V packed into the thread's
    /// scratch, then for a run of rows their scores into the scratch's [m, n] matrix, the
    /// softmax in place, and their product by V into the output.
    func attention(_ b: Program.BatchedMatMul, _ v: Program.BatchedMatMul.Value, _ step: Program.Step) {
        let sa = Shared(pointer: pointer(step.inputs[0].tensor!)), sb = Shared(pointer: pointer(step.inputs[1].tensor!))
        let sv = Shared(pointer: pointer(step.inputs[2].tensor!)), so = Shared(pointer: pointer(step.outputs[0]))
        let scratch = self.scratch.map { Shared(pointer: $0) }
        let count = b.aOffsets.count, none = Program.Activation.none.kernel
        let (k, n, nv) = (Int32(b.k), Int32(b.n), Int32(v.n))
        let (vAt, scoresAt, _) = b.scratchLayout
        func pack(_ i: Int, into p: UnsafeMutablePointer<Float>) {
            Self.packB(b, i, from: sb.pointer, into: p)
            kiln_linear_pack(sv.pointer + v.bOffsets[i], n, nv, 0, p + vAt)
        }
        func rows(_ i: Int, _ r: Range<Int>, packed p: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>) {
            guard !r.isEmpty else { return }
            let m = Int32(r.count)
            kiln_linear(sa.pointer + b.aOffsets[i] + r.lowerBound * b.k, k, n, p, 0, m, 0, (n + 31) / 32, nil, nil, none, scores)
            kiln_softmax_rows(scores, scores, m, n, 0)
            kiln_linear(scores, n, nv, p + vAt, 0, m, 0, (nv + 31) / 32, nil, nil, none, so.pointer + (i * b.m + r.lowerBound) * v.n)
        }
        // Threads take runs of (product, part of its rows) units: whole products when they
        // divide evenly (ViT-B's 12 heads on 2 threads), else each product in parts, so that
        // 3 heads on 2 threads do not leave one thread a third of the time idle. A thread packs
        // each product it meets once.
        let workers = count * b.m * b.n * (b.k + v.n) >= 1 << 16 ? threads : 1
        let split = count % workers == 0 ? 1 : min(b.m, (8 * workers + count - 1) / count)
        parallelChunks(count * split, workers: workers, pool: pool) { worker, units in
            let p = scratch[worker].pointer
            var packedFor = -1
            for u in units {
                let (i, part) = u.quotientAndRemainder(dividingBy: split)
                if i != packedFor { pack(i, into: p); packedFor = i }
                rows(i, b.m * part / split..<b.m * (part + 1) / split, packed: p, scores: p + scoresAt)
            }
        }
    }

    func gemm(_ g: Program.Gemm, _ step: Program.Step) {
        let a = pointer(step.inputs[0].tensor!), b = pointer(step.inputs[1].tensor!), y = pointer(step.outputs[0])
        var beta: Float = 0
        if g.biasMode != 0, let c = step.inputs[2].tensor {
            let cp = pointer(c)
            for i in 0..<g.m {
                for j in 0..<g.n {
                    let v: Float
                    switch g.biasMode {
                    case 1: v = cp[j]
                    case 2: v = cp[i]
                    case 3: v = cp[i * g.n + j]
                    default: v = cp[0]
                    }
                    y[i * g.n + j] = v
                }
            }
            beta = g.beta
        }
        // Split the product over row ranges of A (batch rows) across threads.
        let sa = Shared(pointer: a), sb = Shared(pointer: b), sy = Shared(pointer: y)
        let workers = g.m * g.n * g.k >= 1 << 18 ? threads : 1
        parallelChunks(g.m, workers: workers, pool: pool) { _, range in
            guard !range.isEmpty else { return }
            let aOffset = g.transA ? range.lowerBound : range.lowerBound * g.k
            cblas_sgemm(CblasRowMajor, g.transA ? CblasTrans : CblasNoTrans, g.transB ? CblasTrans : CblasNoTrans,
                        Int32(range.count), Int32(g.n), Int32(g.k), g.alpha, sa.pointer + aOffset, Int32(g.transA ? g.m : g.k),
                        sb.pointer, Int32(g.transB ? g.k : g.n), beta, sy.pointer + range.lowerBound * g.n, Int32(g.n))
        }
        let residual = step.inputs.count > 3 ? step.inputs[3].tensor.map(pointer) : nil
        if g.activation.kind != 0 || residual != nil {
            kiln_epilogue_rows(y, Int32(g.m), Int32(g.n), nil, 0, residual, g.activation.kernel)
        }
    }
}
