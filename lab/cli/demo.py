"""`python -m lab demo`: prepare the classroom demo (lab/demo.py) and say, page by page, when it is ready."""
from __future__ import annotations

import json

from lab.demo import demo_status, prepare_demo


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="queue a demo for a class (GPNN of the OCT scans, a DCGAN quick, its score), once")
    p.add_argument("--status", action="store_true", help="only say how far the last demo is; queue nothing")
    p.add_argument("--json", action="store_true", help="print it as one JSON object")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    if not args.status:
        demo = prepare_demo()
        print(f"demo: {len(demo.runs)} runs ({', '.join(run.id for run in demo.runs)}); they run as jobs")
    pages = demo_status()
    if pages is None:
        print("No demo prepared yet: `python -m lab demo` queues one.")
        return 0
    if args.json:
        print(json.dumps([{"page": p.page, "title": p.title, "state": p.state, "detail": p.detail,
                           "seconds_left": p.seconds_left, "runs": [run.id for run in p.runs]} for p in pages]))
        return 0
    for page in pages:
        print(f"{page.title:20s} {page.state:8s} {page.detail}")
    return 0
