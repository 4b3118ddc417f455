from django import forms

from editor.models import TITLE_MAX_LENGTH


class TitleForm(forms.Form):
    title = forms.CharField(
        max_length=TITLE_MAX_LENGTH,
        strip=True,
        # `strip` empties a blank title before clean_title sees it: same message for both.
        error_messages={"required": "A title cannot be empty."},
    )

    def clean_title(self) -> str:
        title: str = self.cleaned_data["title"]
        # One line only: a pasted newline or control character would break the list layout.
        title = " ".join(title.split())
        if not title:
            raise forms.ValidationError("A title cannot be empty.")
        return title
