"""Recipes: the steps of a prompt cycle, in a TOML file a user can read, edit and check.

    recipe = load("default")     # bundled; or a path
    print(recipe.text)

See docs/recipes.md for the file, field by field.
"""

from agents.recipes.recipe import DEFAULT, Recipe, RecipeError, bundled, default, load, parse, text_hash

__all__ = ["DEFAULT", "Recipe", "RecipeError", "bundled", "default", "load", "parse", "text_hash"]
