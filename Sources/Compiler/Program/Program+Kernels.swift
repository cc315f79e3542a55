import CKernels

// The C kernels' parameter structs, built from the program's descriptors in one place.
extension Program.Conv {
    /// The kernels' geometry of this convolution; `channels` for one group's share of the
    /// input (im2col per group), the whole input by default.
    public func geometry(channels: Int? = nil) -> kiln_conv_geometry {
        kiln_conv_geometry(C: Int32(channels ?? self.channels), H: Int32(height), W: Int32(width),
                           M: Int32(outChannels), OH: Int32(outHeight), OW: Int32(outWidth),
                           KH: Int32(kernelH), KW: Int32(kernelW), SH: Int32(strideH), SW: Int32(strideW),
                           DH: Int32(dilationH), DW: Int32(dilationW),
                           PH: Int32(padTop), PW: Int32(padLeft), PHE: Int32(padBottom), PWE: Int32(padRight))
    }
}

extension Program.Conv {
    /// The scratch the kernel of `pass` needs for this convolution (its definition is the
    /// C kernels' kiln_conv_scratch).
    public func plannedScratch(_ pass: kiln_conv_pass, batch: Int) -> Program.Scratch {
        let code: kiln_conv_algorithm = switch algorithm {
        case .gemm1x1: KILN_CONV_GEMM_1X1
        case .im2col: KILN_CONV_IM2COL
        case .direct: KILN_CONV_DIRECT
        case .winograd: KILN_CONV_WINOGRAD
        case .depthwise: KILN_CONV_DEPTHWISE
        case .int8: KILN_CONV_INT8
        case .bf16: KILN_CONV_BF16
        }
        let s = kiln_conv_scratch(geometry(channels: channels / max(group, 1)), Int32(code.rawValue), Int32(pass.rawValue), Int32(batch))
        return Program.Scratch(total: s.total, second: s.second, third: s.third, group: Int(s.group))
    }
}

extension Program.Pool {
    /// The kernels' geometry of one plane's window (channels unused).
    public var geometry: kiln_conv_geometry {
        kiln_conv_geometry(C: 1, H: Int32(height), W: Int32(width), M: 1, OH: Int32(outHeight), OW: Int32(outWidth),
                           KH: Int32(kernelH), KW: Int32(kernelW), SH: Int32(strideH), SW: Int32(strideW),
                           DH: Int32(dilationH), DW: Int32(dilationW),
                           PH: Int32(padTop), PW: Int32(padLeft), PHE: Int32(padBottom), PWE: Int32(padRight))
    }
}

extension Program.Activation {
    /// The kernels' activation struct.
    public var kernel: kiln_act { kiln_act(kind: kind, alpha: alpha, lo: low, hi: high) }
}
