import Yams

/// Reading values into ``Template``s and remembering where each `${...}` was written.
extension WorkflowReader {
    /// A template from any node: mappings become objects, lists arrays, scalars literals or `${...}` strings.
    mutating func template(_ node: Node, uses: inout [ExpressionUse], part: StepPart) -> Template? {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain || scalar.style == .any, let literal = Self.plainLiteral(scalar.string) {
                return .literal(literal)
            }
            return stringTemplate(scalar, uses: &uses, part: part)
        case .sequence(let sequence):
            var elements: [Template] = []
            var valid = true
            for element in sequence {
                if let value = template(element, uses: &uses, part: part) {
                    elements.append(value)
                } else {
                    valid = false
                }
            }
            return valid ? .array(elements) : nil
        case .mapping(let mapping):
            var members: [String: Template] = [:]
            var valid = true
            for (keyNode, value) in mapping {
                guard case .scalar(let key) = keyNode else {
                    log.report(.wrongKind, at: location(of: keyNode), "keys must be names, not \(describe(keyNode))")
                    valid = false
                    continue
                }
                if let member = template(value, uses: &uses, part: part) {
                    members[key.string] = member
                } else {
                    valid = false
                }
            }
            return valid ? .object(members) : nil
        case .alias:
            log.report(.wrongKind, at: location(of: node), "aliases are not supported here; write the value out")
            return nil
        }
    }

    /// The JSON value of a plain scalar that is not text: `null`, `~`, empty, booleans and numbers.
    static func plainLiteral(_ text: String) -> JSONValue? {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        let scalars = Array(text.unicodeScalars)
        var index = 0
        if index < scalars.count, scalars[index] == "-" || scalars[index] == "+" { index += 1 }
        let digitsStart = index
        while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
        var sawDigits = index > digitsStart
        if index < scalars.count, scalars[index] == "." {
            index += 1
            let fractionStart = index
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            sawDigits = sawDigits || index > fractionStart
        }
        guard sawDigits else { return nil }
        if index < scalars.count, scalars[index] == "e" || scalars[index] == "E" {
            index += 1
            if index < scalars.count, scalars[index] == "-" || scalars[index] == "+" { index += 1 }
            let exponentStart = index
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            guard index > exponentStart else { return nil }
        }
        guard index == scalars.count, let number = Double(text), number.isFinite else { return nil }
        return .number(number)
    }

    /// A string scalar parsed for `${...}`; records each expression with its position.
    mutating func stringTemplate(_ scalar: Node.Scalar, uses: inout [ExpressionUse], part: StepPart) -> Template? {
        let template: Template
        do {
            template = try Template.parse(string: scalar.string)
        } catch {
            log.report(.templateSyntax, at: location(in: scalar, characterOffset: error.offset), error.message)
            return nil
        }
        let offsets = Self.expressionOffsets(in: scalar.string)
        for (index, path) in template.paths.enumerated() {
            let offset = index < offsets.count ? offsets[index] : 0
            uses.append(ExpressionUse(path: path, location: location(in: scalar, characterOffset: offset), part: part))
        }
        return template
    }

    /// The character offsets of each `${` that `Template.parse` reads as an expression, in order.
    static func expressionOffsets(in text: String) -> [Int] {
        var offsets: [Int] = []
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            offsets.append(text.distance(from: text.startIndex, to: open.lowerBound))
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else { break }
            rest = rest[rest.index(after: close)...]
        }
        return offsets
    }

    /// Where character `offset` of a scalar's value is in the file, when the value is written on one line as is;
    /// otherwise (escapes, block scalars, folded lines) the scalar's own position.
    func location(in scalar: Node.Scalar, characterOffset offset: Int) -> SourceLocation {
        guard let mark = scalar.mark else { return .start }
        let start = SourceLocation(line: mark.line, column: mark.column)
        let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
        guard scalar.style == .plain || scalar.style == .any || quoted, mark.line >= 1, mark.line <= lines.count else {
            return start
        }
        let contentColumn = mark.column + (quoted ? 1 : 0)
        let prefix = Array(String(scalar.string.prefix(offset)).unicodeScalars)
        let line = lines[mark.line - 1]
        let from = contentColumn - 1
        guard from >= 0, from + prefix.count <= line.count, Array(line[from..<from + prefix.count]) == prefix else {
            return start
        }
        return SourceLocation(line: mark.line, column: contentColumn + prefix.count)
    }
}
