/// The resolved geometry of a sliding-window op (Conv, MaxPool, AveragePool) for one input:
/// kernel, strides, dilations, explicit begin/end pads after `auto_pad`, and output sizes.
public struct WindowGeometry: Sendable, Equatable {
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padsBegin: [Int]
    public var padsEnd: [Int]
    public var input: [Int]
    public var output: [Int]

    /// Resolves ONNX window attributes against input spatial sizes.
    ///
    /// `output = floor((D + pads − dilation·(k−1) − 1) / stride) + 1`, or `ceil(...)` with
    /// `ceilMode`, where a last window that would start in the right padding is dropped;
    /// `SAME_UPPER`/`SAME_LOWER` give `ceil(D / stride)` with the odd pad at the end/begin.
    public static func resolve(input: [Int], kernel: [Int], strides: [Int]?, dilations: [Int]?, pads: [Int]?,
                               autoPad: String, ceilMode: Bool) throws(WindowError) -> WindowGeometry {
        let n = input.count
        guard kernel.count == n else { throw .message("kernel_shape has \(kernel.count) values for \(n) spatial dimensions") }
        let s = strides ?? Array(repeating: 1, count: n)
        let d = dilations ?? Array(repeating: 1, count: n)
        guard s.count == n else { throw .message("strides has \(s.count) values for \(n) spatial dimensions") }
        guard d.count == n else { throw .message("dilations has \(d.count) values for \(n) spatial dimensions") }
        guard kernel.allSatisfy({ $0 > 0 }) else { throw .message("kernel_shape \(kernel) must be positive") }
        guard s.allSatisfy({ $0 > 0 }) else { throw .message("strides \(s) must be positive") }
        guard d.allSatisfy({ $0 > 0 }) else { throw .message("dilations \(d) must be positive") }
        let limit = ONNXLimits.maxDimension
        guard (kernel + s + d + (pads ?? []) + input).allSatisfy({ $0 <= limit }) else {
            throw .message("kernel_shape, strides, dilations, pads and input sizes must be at most \(limit)")
        }
        var begin = Array(repeating: 0, count: n), end = Array(repeating: 0, count: n)
        var out = Array(repeating: 0, count: n)
        switch autoPad {
        case "NOTSET", "":
            if let p = pads {
                guard p.count == 2 * n else { throw .message("pads has \(p.count) values, expected \(2 * n)") }
                guard p.allSatisfy({ $0 >= 0 }) else { throw .message("pads \(p) must not be negative") }
                begin = Array(p[0..<n])
                end = Array(p[n..<(2 * n)])
            }
            for i in 0..<n {
                let span = input[i] + begin[i] + end[i] - d[i] * (kernel[i] - 1) - 1
                guard span >= 0 else {
                    throw .message("the window (kernel \(kernel[i]), dilation \(d[i])) is larger than the padded input (\(input[i] + begin[i] + end[i])) on spatial axis \(i)")
                }
                if ceilMode {
                    var o = (span + s[i] - 1) / s[i] + 1
                    if (o - 1) * s[i] >= input[i] + begin[i] { o -= 1 }
                    out[i] = o
                } else {
                    out[i] = span / s[i] + 1
                }
            }
        case "VALID":
            for i in 0..<n {
                let span = input[i] - d[i] * (kernel[i] - 1) - 1
                guard span >= 0 else { throw .message("the window is larger than the input on spatial axis \(i)") }
                out[i] = ceilMode ? (span + s[i] - 1) / s[i] + 1 : span / s[i] + 1
            }
        case "SAME_UPPER", "SAME_LOWER":
            for i in 0..<n {
                out[i] = (input[i] + s[i] - 1) / s[i]
                let total = max(0, (out[i] - 1) * s[i] + d[i] * (kernel[i] - 1) + 1 - input[i])
                let small = total / 2, large = total - total / 2
                if autoPad == "SAME_UPPER" { begin[i] = small; end[i] = large } else { begin[i] = large; end[i] = small }
            }
        default:
            throw .message("auto_pad '\(autoPad)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
        return WindowGeometry(kernel: kernel, strides: s, dilations: d, padsBegin: begin, padsEnd: end, input: input, output: out)
    }
}

public enum WindowError: Error, Sendable {
    case message(String)
}

extension InferenceContext {
    /// The window geometry of this node for spatial sizes `input`.
    public func window(input: [Int], kernel: [Int], ceilMode: Bool = false, dilations: Bool = true) throws -> WindowGeometry {
        do {
            return try WindowGeometry.resolve(input: input, kernel: kernel, strides: ints("strides"),
                                              dilations: dilations ? ints("dilations") : nil, pads: ints("pads"),
                                              autoPad: string("auto_pad"), ceilMode: ceilMode)
        } catch {
            switch error { case .message(let m): throw self.error(m) }
        }
    }

    /// Checks an `[N, C, D1, …]` input and returns its static spatial sizes.
    func spatialInput(_ i: Int, minRank: Int = 3, integers: Bool = false) throws -> (TensorType, [Int]) {
        let x = try input(i)
        if !(integers && (x.dtype == .i8 || x.dtype == .u8)) { try requireFloat(x, "input \(i)") }
        guard x.rank >= minRank else { throw error("input must be [N, C, D1, …] (rank ≥ \(minRank)), got \(x.shape.text)") }
        guard let spatial = Array(x.shape[2...]).staticSizes else {
            throw error("spatial dimensions must be static, got \(x.shape.text)")
        }
        return (x, spatial)
    }
}
