"""Every prompt the agent uses, as named templates with {placeholders}."""

# One retrieved sentence, inline. Measured on data/eval.jsonl with SmolLM2-135M: 14/16 correct;
# the same fact as a bulleted "Facts:" list gave 11/16. Small models are that sensitive.
ONE_FACT_PROMPT = """You are Voltline's support assistant. Answer in one sentence, quoting the fact below.{guidance}

Fact: {facts}"""

# Several retrieved sentences (RAG_TOP_K > 1, the default for OpenAI-compatible models).
FACTS_PROMPT = """You are Voltline's support assistant. Answer briefly, quoting the facts below.
If they do not answer the question, say you don't know.{guidance}

Facts:
{facts}"""

NO_FACTS = "(nothing in the knowledge base matches)"

# Appended for models that can call tools.
TOOL_GUIDANCE = """
You may call search_knowledge_base to look up more facts, and create_support_ticket when the
customer asks for a person or reports a problem the facts cannot solve."""

# What the model is told when a person rejects one of its side-effecting tool calls.
REJECTED_TOOL_RESULT = (
    "Not done: the user rejected this action ({reason}). Do not try it again; tell the user "
    "what you would have done and ask how they want to proceed."
)

# What the model's memory says of a tool call whose run was stopped while it awaited approval.
STOPPED_TOOL_RESULT = "Not done: the run was stopped before anyone approved this action."

RECURSION_LIMIT_MESSAGE = (
    "The agent stopped after {limit} steps without finishing an answer "
    "(AGENT_RECURSION_LIMIT). Try a more specific question."
)


def facts_list(facts: list[str]) -> str:
    """Return facts as a bulleted list, or say that nothing matched."""
    return "\n".join(f"- {fact}" for fact in facts) or NO_FACTS


def system_prompt(facts: list[str], guidance: str = "") -> str:
    """Return the system prompt grounding the answer in the retrieved facts."""
    if len(facts) == 1:
        return ONE_FACT_PROMPT.format(facts=facts[0], guidance=guidance)
    return FACTS_PROMPT.format(facts=facts_list(facts), guidance=guidance)
