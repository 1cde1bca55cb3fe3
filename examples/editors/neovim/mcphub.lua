-- lazy.nvim spec for mcphub.nvim with repochat; the server list lives in servers.json (next to this file).
return {
  "ravitemer/mcphub.nvim",
  dependencies = { "nvim-lua/plenary.nvim" },
  build = "npm install -g mcp-hub@latest",
  config = function()
    require("mcphub").setup({
      config = vim.fn.expand("~/.config/mcphub/servers.json"),
    })
  end,
}
