import CKernels
import Compiler
import Foundation
import Graph

// Winograd F(2×2, 3×3) convolution steps, with the path for inputs holding NaN or infinities.
extension CompiledModel {
    /// Winograd F(2×2, 3×3): images spread over threads; with fewer images than threads, each
    /// image split by tile rows, or by output-channel blocks when the transformed weights are
    /// large (so each thread reads only its share of them).
    func winogradConv(_ c: Program.Conv, _ step: Program.Step, index: Int) {
        let (x, bias, residual, y) = convOperands(step)
        let images = step.outputs[0].shape[0]
        guard kiln_has_nonfinite(x.pointer, images * c.channels * c.height * c.width) != 0, let signs = winogradSigns[index] else {
            winogradConv(c, x: x, bias: bias, residual: residual, y: y, index: index, images: images)
            return
        }
        nonFiniteWinograd(c, x: x, bias: bias, residual: residual, y: y, index: index, images: images, signs: signs)
    }

    /// Winograd over an input holding NaN or ±inf, as a direct convolution computes it: the
    /// transforms would mix one infinity into all four outputs of its tile (and inf − inf into
    /// NaN). The non-finite inputs are set to zero for a normal run, which leaves every output
    /// whose window holds none of them exact; each other output is Σ w·x over its non-finite
    /// taps alone — ±inf or NaN, decided by the signs of the weights (kept at packing) — with
    /// the bias, residual and activation applied as the epilogue does. Exceptional inputs only:
    /// this path allocates.
    func nonFiniteWinograd(_ c: Program.Conv, x: Shared<Float>, bias: Shared<Float>?, residual: Shared<Float>?, y: Shared<Float>,
                           index: Int, images: Int, signs: [Int8]) {
        let plane = c.height * c.width, inImage = c.channels * plane, outPlane = c.outHeight * c.outWidth
        // Non-finite inputs by (image, row, column): their channels and values.
        var bad: [Int: [(channel: Int, value: Float)]] = [:]
        for i in 0..<(images * inImage) where !x.pointer[i].isFinite {
            let n = i / inImage, ch = (i % inImage) / plane, p = i % plane
            bad[n * plane + p, default: []].append((ch, x.pointer[i]))
        }
        // Outputs (image, row, column) whose 3×3 window holds one, and their residuals (y may
        // share the residual's storage).
        var affected = Set<Int>()
        for key in bad.keys {
            let n = key / plane, ih = (key % plane) / c.width, iw = key % c.width
            for kh in 0..<3 {
                let oh = ih + c.padTop - kh
                guard oh >= 0 && oh < c.outHeight else { continue }
                for kw in 0..<3 {
                    let ow = iw + c.padLeft - kw
                    if ow >= 0 && ow < c.outWidth { affected.insert(n * outPlane + oh * c.outWidth + ow) }
                }
            }
        }
        let outs = affected.sorted()
        var saved: [Float] = []
        if let residual {
            for o in outs {
                let n = o / outPlane, p = o % outPlane
                for m in 0..<c.outChannels { saved.append(residual.pointer[(n * c.outChannels + m) * outPlane + p]) }
            }
        }
        for (key, list) in bad {
            let n = key / plane, p = key % plane
            for e in list { x.pointer[n * inImage + e.channel * plane + p] = 0 }
        }
        winogradConv(c, x: x, bias: bias, residual: residual, y: y, index: index, images: images)
        for (key, list) in bad {
            let n = key / plane, p = key % plane
            for e in list { x.pointer[n * inImage + e.channel * plane + p] = e.value }
        }
        let act = c.activation
        for (k, o) in outs.enumerated() {
            let n = o / outPlane, oh = (o % outPlane) / c.outWidth, ow = o % c.outWidth
            for m in 0..<c.outChannels {
                var s: Float = 0
                for kh in 0..<3 {
                    let ih = oh - c.padTop + kh
                    guard ih >= 0 && ih < c.height else { continue }
                    for kw in 0..<3 {
                        let iw = ow - c.padLeft + kw
                        guard iw >= 0 && iw < c.width, let list = bad[n * plane + ih * c.width + iw] else { continue }
                        for e in list {
                            // w · x with only w's sign known: ±inf, or NaN for x NaN or w = 0.
                            let sign = signs[((m * c.channels) + e.channel) * 9 + kh * 3 + kw]
                            s += sign == 0 ? Float.nan : Float(sign) * e.value
                        }
                    }
                }
                var v = s + (bias?.pointer[m] ?? 0)
                if residual != nil { v += saved[k * c.outChannels + m] }
                y.pointer[(n * c.outChannels + m) * outPlane + oh * c.outWidth + ow] = kiln_apply_activation(v, act.kernel)
            }
        }
    }

    func winogradConv(_ c: Program.Conv, x: Shared<Float>, bias: Shared<Float>?, residual: Shared<Float>?, y: Shared<Float>, index: Int, images: Int) {
        let inImage = c.channels * c.height * c.width, outImage = c.outChannels * c.outHeight * c.outWidth
        let scratch = self.scratch.map { Shared(pointer: $0) }
        let geometry = c.geometry(), act = c.activation.kernel
        let u = Shared(pointer: packedWeights[index]!)
        let blocks = c.outChannels / 8
        do {
            let tileRows = Int(kiln_winograd_tile_rows(geometry))
            func run(_ n: Int, rows: Range<Int>, blocks: Range<Int>, worker: Int) {
                kiln_winograd_block(geometry, x.pointer + n * inImage, u.pointer, Int32(rows.lowerBound), Int32(rows.upperBound),
                                    Int32(blocks.lowerBound), Int32(blocks.upperBound), bias?.pointer,
                                    residual.map { $0.pointer + n * outImage }, act, scratch[worker].pointer, y.pointer + n * outImage)
            }
            if images >= threads {
                parallelChunks(images, workers: threads, pool: pool) { worker, range in
                    for n in range { run(n, rows: 0..<tileRows, blocks: 0..<blocks, worker: worker) }
                }
                return
            }
            let largeWeights = 16 * c.outChannels * c.channels * 4 > 1 << 20
            for n in 0..<images {
                if largeWeights {
                    parallelChunks(blocks, workers: threads, pool: pool) { worker, range in run(n, rows: 0..<tileRows, blocks: range, worker: worker) }
                } else {
                    parallelChunks(tileRows, workers: threads, pool: pool) { worker, range in run(n, rows: range, blocks: 0..<blocks, worker: worker) }
                }
            }
        }
    }
}
