from rag import Library

lib = Library(data_dir="my-papers")  # the index lives here; models load once
print(lib.ingest(["data/hf-daily-papers"]).model_dump_json())  # page dumps, JSONL, CSV, .bib, CSL-JSON
for hit in lib.find("sharpness-aware minimization", k=3).papers:  # also date_from=, date_to=
    print(hit.paper.id, hit.paper.title, hit.paper.date, round(hit.score, 4))
answer = lib.ask("How does sharpness-aware minimization improve generalization?")
print(answer.answer, *(f"[{s.n}] {s.title}" for s in answer.sources), sep="\n")
print(lib.summarize("sharpness-aware minimization").answer)
print(lib.status().model_dump_json(indent=2))  # the same JSON as `rag status --json`
