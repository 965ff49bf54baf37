"""ctrlgen.serve: the Typer command line and the Gradio app."""
