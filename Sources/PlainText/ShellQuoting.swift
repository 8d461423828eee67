extension String {
    /// This text as one word for a POSIX shell, for commands printed for people to paste: unchanged when it is
    /// only letters, digits and `-_./=:@`, otherwise in single quotes with each `'` written as `'\''`.
    ///
    /// Not for building commands that a program runs: pass arguments as an array instead. "Letters and digits"
    /// include non-ASCII ones, which every UTF-8 shell takes as part of a word.
    public var shellQuoted: String {
        if !isEmpty, allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@".contains($0) }) { return self }
        var quoted = "'"
        for character in self {
            if character == "'" { quoted += "'\\''" } else { quoted.append(character) }
        }
        return quoted + "'"
    }
}
