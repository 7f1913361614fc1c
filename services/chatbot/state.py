"""The typed state of the chatbot: what its lifespan builds and its handlers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends

from services.chatbot.answer import Answerer
from services.chatbot.settings import ChatbotSettings
from services.chatbot.uploads import Ingestion
from services.common.cardinality import TopLabels
from services.common.state import ServiceState, state_dependency
from services.common.triton import TritonClient


@dataclass(kw_only=True)
class ChatbotState(ServiceState):
    settings: ChatbotSettings
    pool: asyncpg.Pool
    triton: TritonClient
    answerer: Answerer
    #: Background ingestion of uploaded PDFs.
    ingestion: Ingestion
    #: Bounded ``user`` label values of the questions-by-user counter.
    user_labels: TopLabels


StateDep = Annotated[ChatbotState, Depends(state_dependency(ChatbotState))]
