/// Which side of a fixed-width field text keeps to.
public enum TextAlignment: Sendable, Hashable {
    /// Text first, fill after it (names, free text).
    case left
    /// Fill first, text after it (counts, figures, zero-filled numbers).
    case right
}

extension String {
    /// This text widened to `width` characters with `fill`: `"7".padded(to: 3, .right, fill: "0")` is `007`,
    /// `"ok".padded(to: 4)` is `ok  `.
    ///
    /// Never cuts: text of `width` characters or more comes back unchanged, so a column can grow ragged but ids stay
    /// whole. Widths count `Character`s, not terminal cells, so a wide glyph (`✓` is one, an emoji may take two
    /// cells) can misalign a column.
    public func padded(to width: Int, _ alignment: TextAlignment = .left, fill: Character = " ") -> String {
        let missing = width - count
        guard missing > 0 else { return self }
        let padding = String(repeating: fill, count: missing)
        return alignment == .left ? self + padding : padding + self
    }
}
