"""A zoo-style processor (the lollms personalities zoo's scripted form)."""

from lollms.client_session import Client
from lollms.config import BaseConfig, ConfigTemplate, TypedConfig
from lollms.helpers import ASCIIColors
from lollms.personality import AIPersonality, APScript
from lollms.prompting import LollmsContextDetails
from lollms.types import MSG_OPERATION_TYPE


class Processor(APScript):
    def __init__(self, personality: AIPersonality, callback=None) -> None:
        template = ConfigTemplate(
            [
                {
                    "name": "max_words",
                    "type": "int",
                    "value": 40,
                    "min": 5,
                    "max": 400,
                    "help": "Longest summary, in words.",
                },
                {
                    "name": "bullet_points",
                    "type": "bool",
                    "value": False,
                    "help": "Summarize as bullet points.",
                },
            ]
        )
        config = TypedConfig(template, BaseConfig.from_template(template))
        super().__init__(personality, config, [{"name": "idle", "commands": {}}], callback=callback)

    def run_workflow(
        self, context_details: LollmsContextDetails = None, client: Client = None, callback=None
    ):
        self.callback = callback
        text = context_details.prompt.strip()
        if not text:
            self.set_message_content("Please give me a text to summarize.")
            return ""
        ASCIIColors.info(f"summarizing {len(text)} characters")
        self.step_start("Summarizing")
        form = "bullet points" if self.personality_config.bullet_points else "one paragraph"
        prompt = self.build_prompt(
            [
                f"!@>system:\n{self.personality.personality_conditioning}",
                f"!@>user:\nSummarize in {form} of at most "
                f"{self.personality_config.max_words} words:\n{text}",
                f"!@>{self.personality.ai_message_prefix}:",
            ]
        )
        summary = self.fast_gen(
            prompt, max_generation_size=4 * self.personality_config.max_words, callback=self.sink
        )
        self.step_end("Summarizing")
        self.set_message_content(
            summary.strip(), msg_type=MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_SET_CONTENT
        )
        return summary
