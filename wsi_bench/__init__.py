"""WSI-Bench as released (ground floor: imports only `common`): the task table (`tasks`: every file stem and
metadata value -> task, capability, answer format), both released file formats and Hub datasets (`files`),
LLaVA records and the inline A)-D) option layout (`records`), and the `BenchError` family (`errors`).
Everyone reads WSI-Bench through here: training, evaluation, curation and the app."""
