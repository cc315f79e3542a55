import CKernels
import Foundation

// Plain loops in Double, written from the definitions (ONNX Conv, MaxPool, AveragePool,
// BatchNormalization; PyTorch's SGD): the expected values of the kernel tests.

/// A seeded generator for test data (SplitMix64), independent of Kiln's own.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in uniform() } }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
}

/// A convolution or pooling window, with the output size ONNX's explicit padding gives.
struct Window {
    var c: Int, h: Int, w: Int, m: Int
    var kh: Int, kw: Int, sh = 1, sw = 1, dh = 1, dw = 1
    var pt = 0, pl = 0, pb = 0, pr = 0

    var oh: Int { (h + pt + pb - dh * (kh - 1) - 1) / sh + 1 }
    var ow: Int { (w + pl + pr - dw * (kw - 1) - 1) / sw + 1 }

    var geometry: kiln_conv_geometry {
        kiln_conv_geometry(C: Int32(c), H: Int32(h), W: Int32(w), M: Int32(m), OH: Int32(oh), OW: Int32(ow),
                           KH: Int32(kh), KW: Int32(kw), SH: Int32(sh), SW: Int32(sw), DH: Int32(dh), DW: Int32(dw),
                           PH: Int32(pt), PW: Int32(pl), PHE: Int32(pb), PWE: Int32(pr))
    }

    /// The input row and column of output (oh, ow) at tap (i, j), or nil in the padding.
    func tap(_ oh: Int, _ ow: Int, _ i: Int, _ j: Int) -> (Int, Int)? {
        let ih = oh * sh - pt + i * dh, iw = ow * sw - pl + j * dw
        return ih >= 0 && ih < h && iw >= 0 && iw < w ? (ih, iw) : nil
    }
}

enum Act {
    case none, relu, leaky(Float), clip(Float, Float), sigmoid, hardswish
    /// QuantizeLinear then DequantizeLinear: scale, and the quantized range less the zero point.
    case quantizeDequantize(Float, Float, Float)

    var c: kiln_act {
        switch self {
        case .none: return kiln_act(kind: 0, alpha: 0, lo: 0, hi: 0)
        case .relu: return kiln_act(kind: 1, alpha: 0, lo: 0, hi: 0)
        case .leaky(let a): return kiln_act(kind: 2, alpha: a, lo: 0, hi: 0)
        case .clip(let lo, let hi): return kiln_act(kind: 3, alpha: 0, lo: lo, hi: hi)
        case .sigmoid: return kiln_act(kind: 4, alpha: 0, lo: 0, hi: 0)
        case .hardswish: return kiln_act(kind: 5, alpha: 0, lo: 0, hi: 0)
        case .quantizeDequantize(let s, let lo, let hi): return kiln_act(kind: 21, alpha: s, lo: lo, hi: hi)
        }
    }

    func apply(_ v: Double) -> Double {
        if case .quantizeDequantize(let s, let lo, let hi) = self {
            // In float32 as the ops compute; NaN quantizes to the lowest value (as onnxruntime).
            let q = (Float(v) / s).rounded(.toNearestOrEven)
            return Double(s * (q.isNaN ? lo : min(max(q, lo), hi)))
        }
        // NaN stays NaN through every one (ONNX); Swift's max and min would drop it.
        if v.isNaN { return v }
        switch self {
        case .none: return v
        case .relu: return max(0, v)
        case .leaky(let a): return v >= 0 ? v : Double(a) * v
        case .clip(let lo, let hi): return min(max(v, Double(lo)), Double(hi))
        case .sigmoid: return 1 / (1 + exp(-v))
        case .hardswish: return v * min(max(v / 6 + 0.5, 0), 1)
        case .quantizeDequantize: preconditionFailure("handled above")
        }
    }
}

enum Reference {
    /// y [M, OH, OW] = act(conv(x [C, H, W], w [M, C, KH, KW]) + bias + residual).
    static func conv(_ g: Window, x: [Float], w: [Float], bias: [Float]?, residual: [Float]?, act: Act) -> [Double] {
        var y = [Double](repeating: 0, count: g.m * g.oh * g.ow)
        for m in 0..<g.m {
            for oh in 0..<g.oh {
                for ow in 0..<g.ow {
                    var s = Double(bias?[m] ?? 0)
                    for c in 0..<g.c {
                        for i in 0..<g.kh {
                            for j in 0..<g.kw {
                                guard let (ih, iw) = g.tap(oh, ow, i, j) else { continue }
                                s += Double(x[(c * g.h + ih) * g.w + iw]) * Double(w[((m * g.c + c) * g.kh + i) * g.kw + j])
                            }
                        }
                    }
                    let k = (m * g.oh + oh) * g.ow + ow
                    y[k] = act.apply(s + Double(residual?[k] ?? 0))
                }
            }
        }
        return y
    }

    /// dW [M, C, KH, KW] = Σ_images dy ⋆ x (the weight gradient of `conv`).
    static func convWeightGrad(_ g: Window, images: Int, x: [Float], dy: [Float]) -> [Double] {
        var dw = [Double](repeating: 0, count: g.m * g.c * g.kh * g.kw)
        for n in 0..<images {
            for m in 0..<g.m {
                for c in 0..<g.c {
                    for i in 0..<g.kh {
                        for j in 0..<g.kw {
                            var s = 0.0
                            for oh in 0..<g.oh {
                                for ow in 0..<g.ow {
                                    guard let (ih, iw) = g.tap(oh, ow, i, j) else { continue }
                                    s += Double(dy[((n * g.m + m) * g.oh + oh) * g.ow + ow]) * Double(x[((n * g.c + c) * g.h + ih) * g.w + iw])
                                }
                            }
                            dw[((m * g.c + c) * g.kh + i) * g.kw + j] += s
                        }
                    }
                }
            }
        }
        return dw
    }

    /// Patches as columns [C·KH·KW, OH·OW].
    static func im2col(_ g: Window, x: [Float]) -> [Double] {
        let p = g.oh * g.ow
        var col = [Double](repeating: 0, count: g.c * g.kh * g.kw * p)
        for c in 0..<g.c {
            for i in 0..<g.kh {
                for j in 0..<g.kw {
                    for oh in 0..<g.oh {
                        for ow in 0..<g.ow {
                            guard let (ih, iw) = g.tap(oh, ow, i, j) else { continue }
                            col[((c * g.kh + i) * g.kw + j) * p + oh * g.ow + ow] = Double(x[(c * g.h + ih) * g.w + iw])
                        }
                    }
                }
            }
        }
        return col
    }

    /// Max (NaN wins; -inf for a window entirely in the padding) or average (over the valid
    /// taps, or over the taps inside the padded input) of one plane.
    static func pool(_ g: Window, x: [Float], max isMax: Bool, includePad: Bool) -> [Double] {
        var y = [Double](repeating: 0, count: g.oh * g.ow)
        for oh in 0..<g.oh {
            for ow in 0..<g.ow {
                var best = -Double.infinity, sum = 0.0, valid = 0, padded = 0
                for i in 0..<g.kh {
                    for j in 0..<g.kw {
                        let ih = oh * g.sh - g.pt + i * g.dh, iw = ow * g.sw - g.pl + j * g.dw
                        if ih >= -g.pt && ih < g.h + g.pb && iw >= -g.pl && iw < g.w + g.pr { padded += 1 }
                        guard let (a, b) = g.tap(oh, ow, i, j) else { continue }
                        let v = Double(x[a * g.w + b])
                        if v > best || v.isNaN { best = v }
                        sum += v
                        valid += 1
                    }
                }
                let n = includePad ? padded : valid
                y[oh * g.ow + ow] = isMax ? best : (n > 0 ? sum / Double(n) : 0)
            }
        }
        return y
    }
}
