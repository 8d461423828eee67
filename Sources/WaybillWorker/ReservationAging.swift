import SagaEngine
import SagaStore
import WaybillDefinition

/// How long effects wait to be either kept or undone: per workflow and step with a compensation, the start of the
/// oldest unfinished saga that holds that step's effect and may still undo it: the step is before the saga's current
/// one (or is it, for a saga that compensates or suspended), and the saga is not past its pivot. Old reservations that
/// nothing releases are the stock a distribution business cannot sell. Read from the sagas' current steps, not their
/// state, it is an upper bound: a step a choice jumped over, or a pivot step a branch of which already shipped, counts.
enum ReservationAging {
    struct Oldest: Sendable, Hashable {
        var workflow: String
        var step: String
        var since: Timestamp
    }

    /// The oldest holder of each step's effect among `groups`, whose definitions `definition` finds by hash.
    static func oldest(
        _ groups: [ActiveStepGroup], definition: (String) -> WorkflowDefinition?
    ) -> [Oldest] {
        var oldest: [[String]: Timestamp] = [:]
        for group in groups {
            guard let definition = definition(group.definitionHash) else { continue }
            let current = group.currentStep.flatMap(definition.stepIndex(of:)) ?? definition.steps.count
            if let pivot = definition.steps.firstIndex(where: \.pivot), current > pivot { continue }
            let held = group.compensating ? min(current + 1, definition.steps.count) : current
            for step in definition.steps.prefix(held) where step.compensate != nil {
                let key = [definition.name, step.id]
                oldest[key] = min(oldest[key] ?? group.oldestStart, group.oldestStart)
            }
        }
        return oldest.map { Oldest(workflow: $0.key[0], step: $0.key[1], since: $0.value) }
            .sorted { ($0.workflow, $0.step) < ($1.workflow, $1.step) }
    }
}
