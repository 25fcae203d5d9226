"""Reports: results-kind detection (:mod:`.kinds`), figures (:mod:`.figures`), the HTML page
(:mod:`.html`, ``write_report``) and a headless-browser render check (:mod:`.browser`)."""
