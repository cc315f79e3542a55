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
